import Foundation

/// A POSIX sh script shipped with the tool and run on a worker through `sh -s`.
public struct RemoteScript: Sendable, Equatable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }

    /// The worker side of a sync (`Remote/Scripts/worker/*.sh` joined, compiled into the tool by the
    /// EmbedScripts build plugin: the bytes shipped are the bytes tested).
    public static func worker() throws -> RemoteScript {
        guard let data = Data(base64Encoded: EmbeddedScripts.worker), let text = String(data: data, encoding: .utf8) else {
            throw CommandLaunchError(command: "worker.sh", reason: "the embedded worker script does not decode; rebuild frappe-deployer")
        }
        return RemoteScript(name: "worker", text: text)
    }

    /// The script as `cksum` names it on a worker ("CRC SIZE"): what a least-privilege key's
    /// dispatcher compares with the copy it was authorized with.
    public var checksum: String { PosixChecksum.line(Array(text.utf8)) }
}

/// What the build recorded about itself.
public enum BuildInfo {
    /// The commit the tool was built from (12 hex digits), or "unknown" outside a git checkout.
    public static let commit = EmbeddedScripts.commit
}
