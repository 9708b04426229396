import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker enable SITE_NAME`.
    public struct Enable: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "enable",
            abstract: "Prepare the main server for remote workers: publish the queue and database, write the worker configs.",
            discussion: """
                Publishes the site's redis-queue (on the first free port from 11000) and FM's global-db \
                (on 3306) on the address the worker reaches this server at: by default this server's \
                source address toward the worker, from the routing table; --advertise-address to choose \
                it. Nothing is published on 0.0.0.0 unless --bind-address 0.0.0.0 asks for it. The \
                compose files are edited in place, every other setting kept; only services whose \
                publishing changed are recreated (global-db serves every bench on this server).

                Writes deployment-data/sites/common_site_config.workers.json (redis_queue) and \
                deployment-data/sites/SITE/site_config.workers.json (db_host) from the current configs; \
                existing ones are kept unless --force. Running it again changes nothing. It ends with \
                what to allow on this server's firewall.

                Exit status: 0 done (or nothing to do); 1 a service could not be recreated (the files \
                are written; run again to retry); 2 bad input (nothing was changed); 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions

        @Option(name: .customLong("advertise-address"), help: ArgumentHelp("The address workers reach this server at. (default: this server's source address toward the worker)", valueName: "address"))
        var advertiseAddress: String?

        @Option(name: .customLong("bind-address"), help: ArgumentHelp("The local address to publish on, if not the advertised one (behind NAT); 0.0.0.0 publishes on every address.", valueName: "address"))
        var bindAddress: String?

        @Option(name: .customLong("services-path"), help: ArgumentHelp("FM's global services directory, with global-db's compose file. (default: the benches root's sibling `services`)", valueName: "path"))
        var servicesPath: String?

        @Flag(name: .customLong("force"), help: "Replace existing *.workers.json files.")
        var force = false

        @Flag(name: .customLong("no-restart"), help: "Edit files only; print the commands that recreate the services.")
        var noRestart = false

        public init() {}

        public func run() async throws {
            let settings: EnableSettings
            let enabler = Enabler(runner: SubprocessRunner())
            let plan: EnablePlan
            do {
                settings = try makeSettings(environment: ProcessInfo.processInfo.environment)
                plan = try await enabler.plan(settings)
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.badInput)
            }
            do {
                try await enabler.apply(plan, restart: settings.restart) { Output.standardOutput($0) }
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.failed)
            }
        }

        func makeSettings(environment: [String: String]) throws -> EnableSettings {
            let sync = try options.settings(environment: environment)
            guard sync.workers.count == 1 else {
                throw ValidationError("enable prepares for one worker at a time (\(sync.workers.count) given): run it once per worker; it is idempotent and keeps the ports it chose")
            }
            for (flag, value) in [("--advertise-address", advertiseAddress), ("--bind-address", bindAddress)] {
                if let value, !NetworkProbe.isNumericAddress(value) {
                    throw ValidationError("\(flag) '\(value)' is not an IP address: give the numeric address (IPv4 or IPv6)")
                }
            }
            let home = environment["HOME"] ?? NSHomeDirectory()
            var services = servicesPath.map { $0.hasPrefix("~/") ? home + $0.dropFirst() : $0 }
                ?? URL(fileURLWithPath: sync.benchesPath).deletingLastPathComponent().appendingPathComponent("services").path
            while services.count > 1, services.hasSuffix("/") { services.removeLast() }
            guard services.hasPrefix("/") else { throw ValidationError("--services-path '\(services)' must be an absolute path") }
            return EnableSettings(siteName: sync.siteName, benchesPath: sync.benchesPath, servicesPath: services,
                                  worker: sync.workers[0], advertiseAddress: advertiseAddress, bindAddress: bindAddress,
                                  force: force, restart: !noRestart)
        }
    }
}
