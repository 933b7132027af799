// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "tpat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tpat", targets: ["tpat"]),
        .library(name: "TPATCore", targets: ["TPATCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
    ],
    targets: [
        .target(
            name: "TPATCore",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            exclude: ["ONNX/README.md"],
            resources: [
                .copy("Selection/Resources/tensorrt10-onnx-operators.json"), .copy("Selection/Resources/tensorrt11-onnx-operators.json"),
                .copy("Selection/Resources/tensorrt-rtx-onnx-operators.json"),
            ]
        ),
        .executableTarget(
            name: "tpat",
            dependencies: [
                "TPATCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "TPATCoreTests", dependencies: ["TPATCore"]),
        .testTarget(name: "TPATCLITests", dependencies: ["TPATCore"]),
    ]
)
