import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// Bad input to the built binary: refused with exit 2 (or 64 for a command line the parser cannot
/// read) and one clear line, before any connection; with --json, one JSON document all the same.
/// The worker named is 127.0.0.1 port 1, where nothing listens: input that got past the checks
/// would fail there instead, with exit 1, and the test would see it.
@Suite("bad input to the binary")
struct BadInputTests {
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    static let site = "bad.example.test"

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-bad")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: "release_20261201_000000")
    }

    func sync(_ extra: [String], site: String = site) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", "sync", site, "--server", "127.0.0.1", "--ssh-port", "1", "--benches-path", fixture.benchesPath] + extra)
    }

    func expectRefused(_ result: ToolResult, _ fragment: String, code: Int32 = 2, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.exitCode == code, "\(result.standardError)", sourceLocation: sourceLocation)
        #expect(result.errors.count == 1, "\(result.standardError)", sourceLocation: sourceLocation)
        #expect(result.errors.first?.contains(fragment) == true, "\(result.standardError)", sourceLocation: sourceLocation)
        #expect(!result.standardError.contains { $0.contains("connect") && !$0.hasPrefix("error:") }, sourceLocation: sourceLocation)
    }

    /// The one JSON document on standard output of a failed run.
    func document(_ result: ToolResult) throws -> [String: Any] {
        let data = Data(result.standardOutput.utf8)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(result.standardOutput)")
    }

    // MARK: - 11.11: --json always prints one document

    @Test("--json on bad input (exit 2): one JSON document with the error and the exit status")
    func jsonOnBadInput() async throws {
        for arguments in [["remote-worker", "sync", "a;b", "--server", "w", "--json"],
                          ["remote-worker", "sync", "--dry-run", "a;b", "--server", "w", "--json"],
                          ["remote-worker", "rollback", "a;b", "--server", "w", "--json"],
                          ["remote-worker", "status", "a;b", "--server", "w", "--json"]] {
            let result = try await DeployerTool.run(arguments)
            #expect(result.exitCode == 2)
            let json = try document(result)
            #expect(json["ok"] as? Bool == false)
            #expect(json["exit_code"] as? Int == 2)
            #expect((json["error"] as? String)?.contains("is not valid") == true, "\(json)")
            #expect(json["command"] as? String == (arguments.contains("--dry-run") ? "dry-run" : arguments[1]))
            #expect(result.errors.count == 1, "the one line stays on standard error")
        }
    }

    @Test("--json on a usage error (exit 64): one JSON document too; --help and --version stay as they are")
    func jsonOnUsageError() async throws {
        let result = try await DeployerTool.run(["remote-worker", "sync", "a.test", "--server", "w", "--json", "--no-such-flag"])
        #expect(result.exitCode == 64)
        let json = try document(result)
        #expect(json["exit_code"] as? Int == 64 && json["ok"] as? Bool == false)
        #expect((json["error"] as? String)?.contains("--no-such-flag") == true, "\(json)")
        #expect(json["command"] as? String == "sync")
        let both = try await DeployerTool.run(["remote-worker", "sync", "a.test", "--server", "w", "--json", "--quiet"])
        #expect(both.exitCode == 64)
        #expect(try document(both)["exit_code"] as? Int == 64)
        let plain = try await DeployerTool.run(["remote-worker", "sync", "--no-such-flag"])
        #expect(plain.exitCode == 64 && plain.standardOutput.isEmpty)
        let help = try await DeployerTool.run(["remote-worker", "sync", "--help", "--json"])
        #expect(help.exitCode == 0 && help.standardOutput.contains("USAGE"))
    }

    // MARK: - 11.12: options refused before connecting

    @Test("an ssh option rsync's -e cannot carry, HOST:PORT, and an ssh config that is a directory are refused with exit 2")
    func connectionOptions() async throws {
        expectRefused(try await sync(["--ssh-option", "SetEnv=A='b'"]), "single quote")
        let withPort = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", "10.0.0.7:22", "--benches-path", fixture.benchesPath])
        expectRefused(withPort, "give the host alone and the port with --ssh-port")
        expectRefused(try await sync(["--ssh-config", directory.path]), "is a directory; give an ssh_config file")
        // An IPv6 address is not HOST:PORT.
        #expect(InputRules.serverProblem("fd00::2") == nil && InputRules.serverProblem("::1") == nil)
    }

    // MARK: - 11.15, 11.17, 11.18

    @Test("an include named like the tool's working directories (.fd-*) is refused: the next sync would delete it")
    func reservedInclude() async throws {
        try FileManager.default.createDirectory(atPath: fixture.workspace + "/.fd-staging-x", withIntermediateDirectories: true)
        expectRefused(try await sync(["--include-dir", ".fd-staging-x"]), "'.fd-'")
        expectRefused(try await sync(["--include-file", "./.fd-old-y/file"]), "'.fd-'")
    }

    @Test("a workspace outside the site's own directory on the worker is refused")
    func workspaceOutsideSite() async throws {
        for path in ["/home/frappe", "/home/frappe/frappe/sites/other.test/workspace", "/srv/\(Self.site)/data"] {
            expectRefused(try await sync(["--workspace-path", path]), "not the workspace in the site's own directory")
        }
    }

    @Test("a release that is not a bench (no apps/frappe, env/ or sites/apps.txt) is refused before staging")
    func emptyRelease() async throws {
        let empty = fixture.workspace + "/release_20261202_000000"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try fixture.activate("release_20261202_000000")
        expectRefused(try await sync([]), "does not look like a bench release: it has no apps/frappe")
        try FileManager.default.createDirectory(atPath: empty + "/apps/frappe", withIntermediateDirectories: true)
        expectRefused(try await sync([]), "it has no env")
    }

    @Test("two million exclude patterns are refused at once, with what fits", .timeLimit(.minutes(1)))
    func manyExcludes() async throws {
        let config = directory.path + "/many.toml"
        var text = "site_name = \"\(Self.site)\"\n[remote_worker]\nserver = \"127.0.0.1\"\nssh_port = 1\nexclude_patterns = [\n"
        text.reserveCapacity(40_000_000)
        for index in 0..<2_000_000 { text += "\"p\(index)/**\",\n" }
        text += "]\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await DeployerTool.run(["remote-worker", "sync", "--config-path", config, "--benches-path", fixture.benchesPath])
        expectRefused(result, "2000000 patterns")
    }
}
