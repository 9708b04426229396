import Foundation

/// A directory removed when the value is released: scopes one test's files.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(prefix: String = "fd-test") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Where the package's own files are, found from this source file's location.
public enum PackagePaths {
    public static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    /// The worker script's parts, in the order the build joins them.
    public static var workerScriptParts: [String] {
        let directory = root + "/Sources/DeployerKit/Remote/Scripts/worker"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".sh") }.sorted().map { directory + "/" + $0 }
    }
    public static var testbedScript: String { root + "/scripts/testbed.sh" }
}
