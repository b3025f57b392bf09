// swift-tools-version: 6.2
// IPN media bus: user-space IPN (Inter Process Networking) and a media fan-out service on it.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "ipn-media-bus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IPNBus", targets: ["IPNBus"]),
        .executable(name: "ipn", targets: ["ipn"]),
        .executable(name: "ipn-host", targets: ["ipn-host"]),
        .executable(name: "ipn-bench", targets: ["ipn-bench"]),
        .executable(name: "mediajack", targets: ["mediajack"]),
        .executable(name: "jackd-ipn", targets: ["jackd-ipn"]),
        // The ALSA PCM plugin (ioplug) for unmodified applications: libasound_module_pcm_ipn.so.
        .library(name: "asound_module_pcm_ipn", type: .dynamic, targets: ["AlsaPluginIPN"]),
        // The vdeplug4 plugin: every VDE tool and qemu on a bus (ipn:///path): libvdeplug_ipn.so.
        .library(name: "vdeplug_ipn", type: .dynamic, targets: ["VDEPluginIPN"]),
        // Our libjack: unmodified JACK programs on jackd-ipn (`ipn-jack PROGRAM`): libjack.so, SONAME libjack.so.0.
        .library(name: "jack", type: .dynamic, targets: ["JackIPN"]),
        .executable(name: "ipn-jack", targets: ["ipn-jack"]),
        .executable(name: "ipn-jack-chain", targets: ["ipn-jack-chain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Socket/cmsg/memfd/eventfd/epoll/spawn plumbing Swift cannot import cleanly. No logic.
        .target(name: "CIPNSys"),
        // The bus: naming, rights, host, policies, rings and pools, the IPN API. Knows nothing of media.
        .target(
            name: "IPNBus",
            dependencies: [
                "CIPNSys",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        // The media wire format, the frame-aware policy and publisher/consumer; pure Swift, no libav,
        // so the bus host can run the media policy without any media library.
        .target(name: "MediaWire", dependencies: ["IPNBus", "CIPNSys", .product(name: "Atomics", package: "swift-atomics")], swiftSettings: strict),
        .executableTarget(name: "ipn-host", dependencies: ["IPNBus", "MediaWire"], swiftSettings: strict),
        // The thin C boundary to libav, libv4l2, alsa-lib and SDL2 (Debian: libavcodec-dev, libavformat-dev,
        // libswscale-dev, libswresample-dev, libv4l-dev, libasound2-dev, libsdl2-dev, libsdl2-ttf-dev).
        .target(
            name: "CMedia",
            linkerSettings: [.linkedLibrary("avformat"), .linkedLibrary("avcodec"), .linkedLibrary("swscale"), .linkedLibrary("swresample"),
                             .linkedLibrary("avutil"), .linkedLibrary("v4l2"), .linkedLibrary("asound"),
                             .linkedLibrary("SDL2"), .linkedLibrary("SDL2_ttf")]),
        // Sources, encoders and sinks on a media bus.
        .target(name: "MediaJack", dependencies: ["MediaWire", "IPNBus", "CMedia", "CIPNSys"], swiftSettings: strict),
        .executableTarget(
            name: "mediajack",
            dependencies: ["MediaJack", "MediaWire", "IPNBus", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Atomics", package: "swift-atomics"),
                           // `mediajack serve`: HTTP for browsers.
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strict),
        // The ALSA ioplug boundary (Debian: libasound2-dev): the entry symbol and macros; no logic.
        // PIC: alsa-lib then defines the versioned symbol a loadable plugin needs (not a static constructor).
        .target(name: "CAlsaPlugin", cSettings: [.define("PIC")], linkerSettings: [.linkedLibrary("asound")]),
        // `pcm.x { type ipn bus "/path" }`: an ALSA PCM on a jackd-ipn bus.
        .target(name: "AlsaPluginIPN", dependencies: ["CAlsaPlugin", "CIPNSys", "IPNBus", "MediaWire"], swiftSettings: strict),
        // The vdeplug4 module table (Debian: libvdeplug-dev); the node itself is Swift.
        .target(name: "CVDEPlugin"),
        .target(name: "VDEPluginIPN", dependencies: ["CVDEPlugin", "CIPNSys", "IPNBus"], swiftSettings: strict),
        // The JACK client API's declarations from the system's headers (Debian: libjack-jackd2-dev), and the one
        // variadic entry point (jack_client_open) Swift cannot define. No logic.
        .target(name: "CJackAPI"),
        // The JACK client API on a jackd-ipn bus. SONAME libjack.so.0, what JACK programs are linked against.
        .target(name: "JackIPN", dependencies: ["CJackAPI", "CIPNSys", "IPNBus", "MediaWire", .product(name: "Atomics", package: "swift-atomics")],
                swiftSettings: strict, linkerSettings: [.unsafeFlags(["-Xlinker", "-soname=libjack.so.0"])]),
        // Runs a JACK program on our libjack, as pw-jack does for PipeWire's.
        .executableTarget(name: "ipn-jack", dependencies: ["MediaWire"], swiftSettings: strict),
        // The benchmark's JACK client chain (C, linked against libjack.so.0: runs on jackd2, PipeWire or ours).
        .executableTarget(name: "ipn-jack-chain", linkerSettings: [.linkedLibrary("jack")]),
        // The audio server: one clock, mixing on `mixer` buses.
        .executableTarget(
            name: "jackd-ipn",
            dependencies: ["MediaJack", "MediaWire", "IPNBus", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: strict),
        .executableTarget(
            name: "ipn",
            dependencies: ["IPNBus", "MediaWire", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: strict),
        .executableTarget(
            name: "ipn-bench",
            dependencies: [
                "IPNBus", "CIPNSys", "MediaWire", "MediaJack",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .target(
            name: "IPNTestSupport",
            dependencies: ["IPNBus", .product(name: "Subprocess", package: "swift-subprocess"), .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict),
        .testTarget(
            name: "IPNBusTests",
            dependencies: ["IPNBus", "IPNTestSupport", "CIPNSys", "MediaWire", "MediaJack"],
            swiftSettings: strict),
        // The device tier: real V4L2 and ALSA drivers in a VM (scripts/vm/run); run alone with --filter DeviceTests.
        .testTarget(name: "DeviceTests", dependencies: ["IPNTestSupport", "MediaJack"], swiftSettings: strict),
    ]
)
