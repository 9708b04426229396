// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "frappe-deployer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "frappe-deployer", targets: ["frappe-deployer"]),
        .library(name: "DeployerKit", targets: ["DeployerKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .executableTarget(
            name: "frappe-deployer",
            dependencies: ["DeployerCLI"]
        ),
        .target(
            name: "DeployerCLI",
            dependencies: [
                "DeployerKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "DeployerKit",
            dependencies: [
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Yams", package: "Yams"),
            ],
            // worker.sh is compiled in (EmbedScripts): the binary needs no resources beside it.
            exclude: ["Remote/Scripts"],
            plugins: ["EmbedScripts"]
        ),
        .executableTarget(name: "embed-scripts", path: "Tools/embed-scripts"),
        .plugin(name: "EmbedScripts", capability: .buildTool(), dependencies: ["embed-scripts"]),
        .executableTarget(
            name: "deployer-fixture",
            dependencies: ["DeployerTestSupport"]
        ),
        .target(
            name: "DeployerTestSupport",
            dependencies: ["DeployerKit", .product(name: "Subprocess", package: "swift-subprocess")]
        ),
        .testTarget(name: "DeployerKitTests", dependencies: ["DeployerKit", "DeployerTestSupport", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "DeployerCLITests", dependencies: ["DeployerCLI", "DeployerKit"]),
        // Depends on the executable so the binary it drives is built first.
        .testTarget(name: "IntegrationTests", dependencies: ["DeployerKit", "DeployerTestSupport", "frappe-deployer"]),
    ]
)
