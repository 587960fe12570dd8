// swift-tools-version:6.2
import PackageDescription

/// Ferry: signed OCI images installed on Linux by an unprivileged agent and a root helper.
/// Module layout follows DESIGN.md "Modules"; C libraries come from Debian through pkg-config.
let package = Package(
    name: "Ferry",
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .executable(name: "ferry-helper", targets: ["ferry-helper"]),
        // Libraries for the fuzzing package in Fuzz/ (and anyone embedding Ferry's verification).
        .library(name: "FerryCore", targets: ["FerryCore"]),
        .library(name: "FerryTrust", targets: ["FerryTrust"]),
        .library(name: "FerryArchive", targets: ["FerryArchive"]),
        .library(name: "FerryLog", targets: ["FerryLog"]),
        .library(name: "FerryInstall", targets: ["FerryInstall"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // Already in the graph through async-http-client; named so that Ferry may use its types (transport
        // errors, the witness server) instead of matching their descriptions.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CGPGME", pkgConfig: "gpgme", providers: [.apt(["libgpgme-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),

        .target(
            name: "FerryCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .target(
            name: "FerryTrust",
            dependencies: [
                "FerryCore", "CSodium", "CGPGME",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .target(name: "FerryArchive", dependencies: ["FerryCore", "CArchive"]),
        .target(
            name: "FerryLog",
            dependencies: ["FerryCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "FerryInstall", dependencies: ["FerryCore", "FerryTrust", "FerryArchive", "FerryLog"]),
        .target(name: "FerryPublish", dependencies: ["FerryCore", "FerryTrust", "FerryArchive", "FerryLog"]),
        .target(
            name: "FerryBus",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "FerryFetch",
            dependencies: [
                "FerryCore",
                "FerryArchive",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FerryCLI",
            dependencies: [
                "FerryCore", "FerryTrust", "FerryArchive", "FerryInstall", "FerryBus", "FerryFetch", "FerryLog",
                "FerryPublish", "FerryHelper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FerryHelper",
            dependencies: [
                "FerryCore", "FerryTrust", "FerryInstall", "FerryBus", "FerryLog",
                .product(name: "Logging", package: "swift-log"),
            ],
            // The introspection document is the shipped file itself (a link to dbus/dev.ferry.Helper1.xml),
            // compiled into the module: an installed helper has no resource bundle to look in.
            resources: [.embedInCode("dev.ferry.Helper1.xml")]
        ),
        .executableTarget(name: "ferry", dependencies: ["FerryCLI"]),
        // Test-only: runs real tools (gpg, minisign, skopeo, the built binaries) and makes temp dirs.
        .target(name: "FerryTestSupport", dependencies: ["FerryCore"]),
        .executableTarget(
            name: "ferry-helper",
            dependencies: [
                "FerryCore", "FerryBus", "FerryHelper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "FerryCoreTests", dependencies: ["FerryTestSupport", "FerryCore"]),
        .testTarget(name: "FerryTrustTests", dependencies: ["FerryTestSupport", "FerryTrust", "FerryCore"]),
        .testTarget(name: "FerryArchiveTests", dependencies: ["FerryTestSupport", "FerryArchive", "FerryCore"]),
        .testTarget(name: "FerryInstallTests", dependencies: ["FerryTestSupport", "FerryInstall", "FerryArchive", "FerryTrust", "FerryCore", "FerryLog"]),
        .testTarget(name: "FerryLogTests", dependencies: ["FerryTestSupport", "FerryLog", "FerryCore", "FerryCLI"]),
        .testTarget(name: "FerryBusTests", dependencies: ["FerryTestSupport", "FerryBus"]),
        .testTarget(name: "FerryHelperTests", dependencies: ["FerryTestSupport", "FerryHelper", "FerryBus", "FerryTrust", "FerryCore"]),
        .testTarget(name: "FerryCLITests", dependencies: ["FerryTestSupport", "FerryCLI"]),
        .testTarget(name: "FerryIntegrationTests", dependencies: ["FerryTestSupport", "FerryCore"]),
        .testTarget(name: "FerryRobustnessTests", dependencies: ["FerryTestSupport", "FerryCore", "FerryFetch"]),
    ]
)

// Warnings are errors in Ferry's own code, in every build (CI included): a warning is fixed when it appears, not
// collected. Dependencies are not affected.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
}
