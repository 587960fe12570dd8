// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for Ferry's parsers of untrusted input. Build with `-sanitize=fuzzer,address`
/// (see scripts/fuzz.sh and docs/fuzzing.md). libFuzzer provides `main`; each target only defines
/// `LLVMFuzzerTestOneInput`, so its sources are compiled with `-parse-as-library`.
let libraryMode: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, swiftSettings: libraryMode)
}

let package = Package(
    name: "FerryFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "FerryCore", package: "main")]),
        fuzzTarget("fuzz-oci", [.product(name: "FerryCore", package: "main")]),
        fuzzTarget("fuzz-claim", [.product(name: "FerryCore", package: "main")]),
        fuzzTarget("fuzz-minisign", [.product(name: "FerryTrust", package: "main")]),
        fuzzTarget("fuzz-tuf", [.product(name: "FerryTrust", package: "main")]),
        fuzzTarget("fuzz-layer", [
            .product(name: "FerryCore", package: "main"), .product(name: "FerryArchive", package: "main"),
        ]),
    ]
)
