// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for Ferry's parsers of untrusted input. Build with `-sanitize=fuzzer,address`
/// (see scripts/fuzz.sh and docs/fuzzing.md). Each target defines
/// `LLVMFuzzerTestOneInput` and an entry point. SwiftPM on Linux links an executable with `--defsym main=<module>_main`
/// (its renamed entry point), so each target defines `<module>_main` itself with `@_cdecl` and hands over to
/// libFuzzer's `LLVMFuzzerRunDriver`; the sources are compiled with `-parse-as-library` (no top-level code).
let libraryMode: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, swiftSettings: libraryMode)
}

let package = Package(
    name: "FerryFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),
        fuzzTarget("fuzz-oci", [.product(name: "FerryCore", package: "main")]),
        fuzzTarget("fuzz-claim", [.product(name: "FerryCore", package: "main")]),
        fuzzTarget("fuzz-minisign", [.product(name: "FerryTrust", package: "main")]),
        fuzzTarget("fuzz-tuf", [.product(name: "FerryTrust", package: "main")]),
        fuzzTarget("fuzz-layer", [
            .product(name: "FerryCore", package: "main"), .product(name: "FerryArchive", package: "main"),
        ]),
    ]
)
