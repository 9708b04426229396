import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker authorize SITE_NAME`.
    public struct Authorize: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "authorize",
            abstract: "Print, or with --install install, a least-privilege SSH key for the site on each worker.",
            discussion: """
                The key (--key, made with ssh-keygen when it does not exist) gets one authorized_keys \
                entry per worker: restrict,command="/bin/sh SITE_DIR/.frappe-deployer/authorized/dispatch". \
                The dispatcher runs only this frappe-deployer's worker script, installed beside it, for \
                the site's workspace, and rsync confined to the workspace by the worker's rrsync; a \
                shell, any other command, another directory and port forwarding are refused. With \
                --install, the script, the dispatcher and the entry are installed over the current \
                (full-access) connection, replacing the site's earlier entry. Then set \
                restricted_key = "KEY" (or --restricted-key KEY) and sync, status, rollback and \
                history use that key. After upgrading frappe-deployer, run --install again: the \
                dispatcher refuses a worker script other than the one it was authorized with.

                Exit status: 0 done on every worker; 1 a worker failed; 2 bad input; 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var fleet: FleetOptions

        @Option(name: .customLong("key"), help: ArgumentHelp("The private key of the least-privilege key. (default: restricted_key, else ~/.ssh/frappe-deployer-SITE)", valueName: "path"))
        var key: String?

        @Flag(name: .customLong("install"), help: "Install the worker script, the dispatcher and the authorized_keys entry on each worker.")
        var install = false

        public init() {}

        public func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let settings: SyncSettings
            let privateKey: String
            do {
                settings = try options.settings(environment: environment, keysExist: false) { fleet.apply(to: &$0) }
                let home = environment["HOME"] ?? NSHomeDirectory()
                privateKey = SettingsResolver.expand(key ?? settings.workers.first?.restrictedKey ?? "~/.ssh/frappe-deployer-\(settings.siteName)", home: home)
                if let problem = InputRules.remotePathProblem(privateKey) {
                    throw ConfigError.invalidValue(source: "option --key", keyPath: "key", problem: "'\(privateKey)': \(problem)")
                }
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.badInput)
            }
            let runner = SyncRunner(runner: SubprocessRunner(), reporter: SilentReporter(), verbose: options.verbose)
            let key: AuthorizedKey
            do {
                let made = try await runner.authorizedKey(privateKey: privateKey, site: settings.siteName)
                key = made.key
                if made.created { Output.standardError("created \(privateKey) (ed25519, no passphrase: the tool runs unattended)") }
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.failed)
            }
            guard install else {
                for worker in settings.workers {
                    Output.standardOutput("[\(worker.server)] \(key.entry(siteDirectory: worker.siteDirectory))")
                }
                Output.standardOutput("run again with --install to install it with the worker script and its dispatcher (the entry alone runs nothing)")
                return
            }
            let results = await FleetRunner.map(settings.workers.count, parallel: settings.parallel) { index in
                await runner.authorize(key, site: settings.siteName, worker: settings.workers[index])
            }.compactMap { $0 }
            for result in results {
                if let error = result.error {
                    Output.standardError("error: [\(result.server)] \(error)")
                } else {
                    Output.standardOutput("[\(result.server)] installed: \(result.entry)")
                }
            }
            if results.allSatisfy({ $0.error == nil }) {
                Output.standardOutput("use it: restricted_key = \"\(privateKey)\" in [remote_worker] (or --restricted-key \(privateKey))")
            } else {
                throw ExitCode(Diagnostics.failed)
            }
        }
    }
}
