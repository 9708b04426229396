import Foundation

/// A POSIX sh script shipped with the tool and run on a worker through `sh -s`.
public struct RemoteScript: Sendable, Equatable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }

    /// The worker side of a sync (`Remote/Scripts/worker.sh`).
    public static func worker() throws -> RemoteScript {
        try load("worker")
    }

    static func load(_ name: String) throws -> RemoteScript {
        guard let url = Bundle.module.url(forResource: name, withExtension: "sh", subdirectory: "Scripts") else {
            throw CommandLaunchError(command: "\(name).sh", reason: "the script is missing from the tool's resources; reinstall frappe-deployer")
        }
        return RemoteScript(name: name, text: try String(contentsOf: url, encoding: .utf8))
    }
}
