import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// `remote-worker enable` on a main server with a real Docker engine and a real Redis, then a sync
/// to a real worker that must reach that Redis through the config enable wrote. The main server is
/// a testbed host too (its own namespace and Docker engine); the tool runs inside its namespace.
@Suite("remote-worker enable, then sync, against testbed hosts", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class EnableIntegrationTests {
    static let site = "erp.example.test"
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let main: TestbedWorker
    let worker: TestbedWorker
    var services: String { directory.path + "/services" }

    init() async throws {
        directory = try TemporaryDirectory(prefix: "fd-en")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: Self.site,
                                              release: "release_20261120_101500", workerConfigs: false)
        main = try await TestbedWorker.up("enmain", index: 81)
        worker = try await TestbedWorker.up("enwork", index: 82)
        try await worker.addSite(Self.site)
        try await main.route(to: worker)
        try await main.addRedisImage()

        // The main server's FM files: the site's redis-queue runs a real Redis; global-db stands
        // in for MariaDB (what matters here is its publishing). Neither publishes anything yet.
        try """
            services:
              frappe:
                image: fdtb/busybox:latest
                command: ["sleep", "86400"]
              redis-queue:
                image: fdtb/redis:latest
                command: ["/bin/redis-server", "--protected-mode", "no", "--save", ""]
                init: true

            """.write(toFile: fixture.siteDirectory + "/docker-compose.yml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        try """
            services:
              global-db:
                image: fdtb/busybox:latest
                command: ["nc", "-ll", "-p", "3306", "-e", "echo", "mariadb"]
                init: true

            """.write(toFile: services + "/docker-compose.yml", atomically: true, encoding: .utf8)
        for (dir, service) in [(fixture.siteDirectory, "redis-queue"), (services, "global-db")] {
            let up = try await main.inNamespace("docker", ["compose", "--project-directory", dir, "-f", dir + "/docker-compose.yml", "up", "-d", service])
            guard up.succeeded else { throw FixtureError("starting \(service) on the main host: \(up.standardErrorTail)") }
        }
    }

    deinit {
        worker.down()
        main.down()
    }

    func enable(_ extra: [String] = []) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", "enable", Self.site, "--server", worker.address, "--ssh-config", worker.sshConfig,
                                    "--benches-path", fixture.benchesPath, "--services-path", services] + extra,
                                   environment: ["DOCKER_HOST": main.dockerHost], namespace: main.namespace)
    }

    /// redis-cli inside a host's namespace.
    func redis(on host: TestbedWorker, _ arguments: [String]) async throws -> String {
        let output = try await host.inNamespace("redis-cli", arguments)
        return output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("enable publishes on the worker-facing address; the synced worker reaches the real queue; a rerun changes nothing")
    func enableThenSync() async throws {
        let before = try await redis(on: worker, ["-h", main.address, "-p", "11000", "ping"])
        #expect(before != "PONG", "nothing is published before enable")

        let first = try await enable()
        #expect(first.exitCode == 0, "stderr: \(first.standardError.joined(separator: "\n"))")
        let out = first.standardOutput
        #expect(out.contains("worker \(worker.address) will reach this server at \(main.address) (this server's source address toward \(worker.address))"))
        #expect(out.contains("redis-queue now publishes \(main.address):11000:6379"), "\(out)")
        #expect(out.contains("global-db now publishes \(main.address):3306:3306"), "\(out)")
        #expect(!out.contains("fixture-secret"))

        // Compose itself reads the edited file the same way.
        let config = try await main.inNamespace("docker", ["compose", "-f", fixture.siteDirectory + "/docker-compose.yml", "config", "--format", "json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(config.standardOutput.utf8)) as? [String: Any]
        let queue = ((parsed?["services"] as? [String: Any])?["redis-queue"] as? [String: Any])
        let ports = queue?["ports"] as? [[String: Any]]
        #expect(ports?.first?["host_ip"] as? String == main.address)
        #expect("\(ports?.first?["published"] ?? "")" == "11000")
        #expect(queue?["command"] as? [String] == ["/bin/redis-server", "--protected-mode", "no", "--save", ""], "other settings kept")

        // The worker reaches the real Redis on the published port; nothing else of the host is published.
        #expect(try await redis(on: worker, ["-h", main.address, "-p", "11000", "ping"]) == "PONG")

        // A rerun changes nothing and says so.
        let files = [fixture.siteDirectory + "/docker-compose.yml", services + "/docker-compose.yml",
                     fixture.deploymentData + "/sites/common_site_config.workers.json",
                     fixture.deploymentData + "/sites/\(Self.site)/site_config.workers.json"]
        let written = files.map { FileManager.default.contents(atPath: $0) }
        let second = try await enable()
        #expect(second.exitCode == 0)
        #expect(second.standardOutput.contains("nothing to change"), "\(second.standardOutput)")
        #expect(files.map { FileManager.default.contents(atPath: $0) } == written)

        // Sync from the main server; the worker's services read the queue enable published.
        let sync = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address,
                                               "--ssh-config", worker.sshConfig, "--benches-path", fixture.benchesPath])
        #expect(sync.exitCode == 0, "stderr: \(sync.standardError.joined(separator: "\n"))")
        let beat = try await worker.heartbeat(site: Self.site, service: "short-worker")
        #expect(beat.redisQueue == "redis://\(main.address):11000")
        #expect(beat.dbHost == main.address)

        // From the worker, with the URL its services read: a job pushed there is seen on the main server.
        #expect(try await redis(on: worker, ["-u", beat.redisQueue, "rpush", "rq:queue:fdtb", "from-worker"]) == "1")
        #expect(try await redis(on: main, ["-h", main.address, "-p", "11000", "lrange", "rq:queue:fdtb", "0", "-1"]) == "from-worker")
        // And the database port answers there too.
        let db = try await worker.inNamespace("/bin/busybox", ["nc", "-w", "3", main.address, "3306"])
        #expect(db.standardOutput.contains("mariadb"))
    }
}
