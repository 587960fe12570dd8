// swift-tools-version:6.0
import Foundation
import PackageDescription

/// libFuzzer targets for Ferry's parsers of untrusted input. Build with `-sanitize=fuzzer,address`
/// (see scripts/fuzz.sh and docs/fuzzing.md). Each target defines
/// `LLVMFuzzerTestOneInput` and an entry point. SwiftPM on Linux links an executable with `--defsym main=<module>_main`
/// (its renamed entry point), so each target defines `<module>_main` itself with `@_cdecl` and hands over to
/// libFuzzer's `LLVMFuzzerRunDriver`; the sources are compiled with `-parse-as-library` (no top-level code).
/// SwiftPM names a path dependency after its directory (lowercased), whatever the checkout is called.
let ferry = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent.lowercased()

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
        fuzzTarget("fuzz-oci", [.product(name: "FerryCore", package: ferry)]),
        fuzzTarget("fuzz-claim", [.product(name: "FerryCore", package: ferry)]),
        fuzzTarget("fuzz-minisign", [.product(name: "FerryTrust", package: ferry)]),
        fuzzTarget("fuzz-tuf", [.product(name: "FerryTrust", package: ferry)]),
        fuzzTarget("fuzz-note", [.product(name: "FerryLog", package: ferry)]),
        fuzzTarget("fuzz-checkpoint", [.product(name: "FerryLog", package: ferry)]),
        fuzzTarget("fuzz-tile", [.product(name: "FerryLog", package: ferry)]),
        fuzzTarget("fuzz-witness", [.product(name: "FerryLog", package: ferry)]),
        fuzzTarget("fuzz-chunked-toc", [
            .product(name: "FerryCore", package: ferry), .product(name: "FerryArchive", package: ferry),
        ]),
        fuzzTarget("fuzz-logentry", [
            .product(name: "FerryCore", package: ferry), .product(name: "FerryLog", package: ferry),
            .product(name: "FerryInstall", package: ferry),
        ]),
        fuzzTarget("fuzz-ferryrepo", [
            .product(name: "FerryCore", package: ferry), .product(name: "FerryTrust", package: ferry),
            .product(name: "FerryLog", package: ferry),
        ]),
        fuzzTarget("fuzz-layer", [
            .product(name: "FerryCore", package: ferry), .product(name: "FerryArchive", package: ferry),
        ]),
    ]
)
