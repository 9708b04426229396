import Foundation

/// A least-privilege key for one site (`remote-worker authorize`): on each worker an
/// `authorized_keys` entry `restrict,command="/bin/sh STATE/authorized/dispatch"` for it, whose
/// dispatcher runs only this tool's worker script (the copy installed beside it) for the site's
/// workspace, and rsync confined to that workspace by rrsync: no shell, no forwarding, no other
/// directory.
public struct AuthorizedKey: Sendable, Equatable {
    public var type: String
    public var base64: String

    public init(type: String, base64: String) {
        self.type = type
        self.base64 = base64
    }

    /// Reads an OpenSSH public key line ("TYPE BASE64 [COMMENT]").
    public init?(publicKeyLine line: String) {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count >= 2,
              fields[0].allSatisfy({ $0.isLowercase || $0.isNumber || "@.-".contains($0) }),
              fields[1].allSatisfy({ $0.isLetter && $0.isASCII || $0.isNumber || "+/=".contains($0) }) else { return nil }
        self.init(type: fields[0], base64: fields[1])
    }

    /// As the worker's `authorize` phase takes it.
    var argument: String { "\(type):\(base64)" }

    /// The entry on a worker whose site directory is `siteDirectory` (the worker script's
    /// `authorize` writes the same line; a test holds the two together).
    public func entry(siteDirectory: String) -> String {
        "restrict,command=\"/bin/sh \(siteDirectory)/.frappe-deployer/authorized/dispatch\" \(type) \(base64) frappe-deployer:\(siteDirectory)"
    }
}

/// What `authorize` did on one worker.
public struct AuthorizeResult: Sendable, Equatable, Encodable {
    public var server: String
    public var entry: String
    /// Installed on the worker (`--install`), or only printed.
    public var installed: Bool
    public var error: String?
}

extension SyncRunner {
    /// The key's public half, made with ssh-keygen (ed25519, no passphrase: the tool runs
    /// unattended) when `privateKey` does not exist yet.
    public func authorizedKey(privateKey: String, site: String) async throws -> (key: AuthorizedKey, created: Bool) {
        var created = false
        if !FileManager.default.fileExists(atPath: privateKey) {
            let output = try await runner.run(Command("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "frappe-deployer \(site)", "-f", privateKey]))
            guard output.succeeded else {
                throw CommandLaunchError(command: "ssh-keygen", reason: output.standardErrorTail.last ?? "exit \(output.exitCode)")
            }
            created = true
        }
        let line = (try? String(contentsOfFile: privateKey + ".pub", encoding: .utf8)) ?? ""
        guard let key = AuthorizedKey(publicKeyLine: line) else {
            throw CommandLaunchError(command: "authorize", reason: "\(privateKey).pub is missing or not an OpenSSH public key: give the private key whose .pub lies beside it")
        }
        return (key, created)
    }

    /// Installs `key` on `worker` over a full-access connection: the worker script (this build's),
    /// its dispatcher, and the `authorized_keys` entry (replacing the site's earlier one).
    public func authorize(_ key: AuthorizedKey, site: String, worker: WorkerSettings) async -> AuthorizeResult {
        var full = worker
        full.restrictedKey = nil
        let entry = key.entry(siteDirectory: worker.siteDirectory)
        var result = AuthorizeResult(server: worker.server, entry: entry, installed: false)
        do {
            let script = try RemoteScript.worker()
            result.entry = try await WorkerConnection.using(worker: full, runner: runner) { connection in
                let staging = try TemporaryFolder()
                defer { staging.remove() }
                try Data(script.text.utf8).write(to: URL(fileURLWithPath: staging.path + "/worker.sh"))
                _ = try await connection.transfer(RsyncTransfer(name: "worker script", sources: [staging.path + "/"],
                                                                destination: worker.siteDirectory + "/.fd-authorized.new", excludes: []),
                                                  output: .quiet, checksum: false)
                let facts = try await connection.run(.authorize(site: site, script: script.checksum, key: key.argument), step: "authorize")
                return facts.text("authorized_entry") ?? entry
            }
            result.installed = true
        } catch {
            result.error = error.userMessage
        }
        return result
    }
}

/// A private directory under /tmp, removed by its owner.
struct TemporaryFolder {
    let path: String
    init() throws { path = try WorkerConnection.makePrivateDirectory() }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
