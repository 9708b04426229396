import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The worker script run locally against temporary directories: the phases that need no Docker.
@Suite("worker.sh run locally")
struct WorkerScriptTests {
    let directory: TemporaryDirectory
    var site: String { directory.path + "/sites/a.test" }
    var workspace: String { site + "/workspace" }

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-script")
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
    }

    func run(_ arguments: [String], path: String? = nil) async throws -> CommandOutput {
        let script = try RemoteScript.worker()
        var command = Command("/bin/sh", ["-s", "--"] + arguments, standardInput: script.text)
        if let path {
            command = Command("/usr/bin/env", ["PATH=\(path)", "/bin/sh", "-s", "--"] + arguments, standardInput: script.text)
        }
        return try await SubprocessRunner().run(command)
    }

    @Test("the shipped script is the one in the source tree and passes shellcheck")
    func shellcheck() async throws {
        let shipped = try RemoteScript.worker().text
        #expect(shipped == (try String(contentsOfFile: PackagePaths.workerScript, encoding: .utf8)))
        let output = try await SubprocessRunner().run(Command("shellcheck", ["-s", "sh", PackagePaths.workerScript]))
        #expect(output.exitCode == 0, "\(output.standardOutput)")
    }

    @Test("preflight refuses a worker without compose files, exit 3, one error line, nothing created")
    func preflightMissingCompose() async throws {
        try FileManager.default.removeItem(atPath: workspace)
        let output = try await run(["preflight", workspace, "a.test"])
        #expect(output.exitCode == 3)
        #expect(output.standardErrorTail == ["error: \(site)/docker-compose.yml is missing on the worker: copy the site's compose files from the main server (remote-worker enable)"])
        #expect(!FileManager.default.fileExists(atPath: workspace))
    }

    @Test("preflight refuses a site dir that does not exist")
    func preflightMissingSiteDir() async throws {
        let output = try await run(["preflight", directory.path + "/nope/workspace", "a.test"])
        #expect(output.exitCode == 3)
        #expect(output.standardErrorTail.first?.contains("does not exist on the worker") == true)
    }

    @Test("activate links worker configs, creates required directories and flips frappe-bench")
    func activate() async throws {
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_2",
                                                  profile: FixtureProfile(files: 3, bytes: 100))
        // The worker receives the release without the two config links (they are excluded).
        let release = fixture.workspace + "/release_2"
        try FileManager.default.removeItem(atPath: release + "/sites/common_site_config.json")
        try FileManager.default.removeItem(atPath: release + "/sites/a.test/site_config.json")
        try FileManager.default.removeItem(atPath: fixture.workspace + "/frappe-bench")
        try FileManager.default.createSymbolicLink(atPath: fixture.workspace + "/frappe-bench", withDestinationPath: "release_1")

        let output = try await run(["activate", fixture.workspace, "a.test", "release_2"])
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        #expect(output.standardOutput == "live_release=release_2\n")
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: fixture.workspace + "/frappe-bench") == "release_2")
        #expect(try fm.destinationOfSymbolicLink(atPath: release + "/sites/common_site_config.json") == "../../deployment-data/sites/common_site_config.workers.json")
        #expect(try fm.destinationOfSymbolicLink(atPath: release + "/sites/a.test/site_config.json") == "../../../deployment-data/sites/a.test/site_config.workers.json")
        // The links resolve to the worker configs.
        let linked = try String(contentsOfFile: release + "/sites/common_site_config.json", encoding: .utf8)
        #expect(linked.contains(fixture.workersRedisQueue))
        for required in ["deployment-data/sites/a.test/private/files", "deployment-data/sites/a.test/public/files", "frappe-bench/config/pids"] {
            var isDirectory: ObjCBool = false
            #expect(fm.fileExists(atPath: fixture.workspace + "/" + required, isDirectory: &isDirectory) && isDirectory.boolValue, "\(required)")
        }
        // No temporary links are left behind.
        #expect(try fm.contentsOfDirectory(atPath: fixture.workspace).filter { $0.contains("fd-new") }.isEmpty)
    }

    @Test("activate refuses a release that was not transferred and leaves frappe-bench alone")
    func activateMissingRelease() async throws {
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 3, bytes: 100))
        let output = try await run(["activate", fixture.workspace, "a.test", "release_9"])
        #expect(output.exitCode == 4)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.workspace + "/frappe-bench") == "release_1")
    }

    @Test("an unknown phase or a relative workspace is a usage error")
    func usage() async throws {
        #expect(try await run(["explode", workspace]).exitCode == 2)
        #expect(try await run(["stop", "relative/ws"]).exitCode == 2)
    }
}
