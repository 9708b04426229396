import DeployerKit
import Testing

@Suite("TOML configuration file")
struct ConfigFileTests {
    @Test("the spec's example file is read into one worker")
    func specExample() throws {
        let file = try ConfigFile.parse("""
            site_name = "my-site"
            benches_path = "/srv/benches"
            [remote_worker]
            server = "192.168.1.100"
            ssh_user = "frappe"
            ssh_port = 22
            workspace_path = "/home/frappe/workspace"
            include_dirs = ["custom_apps", "private_scripts"]
            include_files = ["worker.env", "logging.conf"]
            exclude_patterns = ["--exclude=large_directory/**", "--exclude=*.iso"]
            """, path: "worker.toml")
        #expect(file.siteName == "my-site")
        #expect(file.benchesPath == "/srv/benches")
        #expect(file.remoteWorkers == [RemoteWorkerConfig(
            server: "192.168.1.100", sshUser: "frappe", sshPort: 22, workspacePath: "/home/frappe/workspace",
            includeDirs: ["custom_apps", "private_scripts"], includeFiles: ["worker.env", "logging.conf"],
            excludePatterns: ["--exclude=large_directory/**", "--exclude=*.iso"])])
    }

    @Test("a file without [remote_worker] has no workers")
    func noWorker() throws {
        #expect(try ConfigFile.parse("site_name = \"a\"", path: "c.toml").remoteWorkers.isEmpty)
    }

    @Test("a syntax error names the file, line and column")
    func syntaxError() {
        #expect {
            try ConfigFile.parse("site_name = \"a\"\n[remote_worker\nserver = 1", path: "bad.toml")
        } throws: { error in
            guard case .syntax(let path, let line, _, _)? = error as? ConfigError else { return false }
            return path == "bad.toml" && line == 2 && (error as? ConfigError)?.errorDescription?.hasPrefix("bad.toml:2:") == true
        }
    }

    @Test("an unknown key is an error naming its key path", arguments: [
        ("sitename = \"a\"", "sitename"),
        ("[remote_worker]\nhost = \"x\"", "remote_worker.host"),
        ("[remote_worker]\nssh_port = 22\nssh_key = \"k\"", "remote_worker.ssh_key"),
    ])
    func unknownKey(text: String, keyPath: String) {
        #expect(throws: ConfigError.self) { try ConfigFile.parse(text, path: "c.toml") }
        do {
            _ = try ConfigFile.parse(text, path: "c.toml")
        } catch {
            guard case .unknownKey(let source, let path, let allowed) = error else { Issue.record("wrong error \(error)"); return }
            #expect(source == "c.toml")
            #expect(path == keyPath)
            #expect(!allowed.isEmpty)
            #expect(error.errorDescription?.contains("`\(keyPath)`") == true)
        }
    }

    @Test("a wrong type names the key path and what was expected", arguments: [
        ("[remote_worker]\nssh_port = \"22\"", "remote_worker.ssh_port", "an integer"),
        ("[remote_worker]\nssh_port = 22.5", "remote_worker.ssh_port", "an integer"),
        ("[remote_worker]\nserver = 10", "remote_worker.server", "a string"),
        ("[remote_worker]\ninclude_dirs = \"apps\"", "remote_worker.include_dirs", "an array of strings"),
        ("[remote_worker]\ninclude_files = [\"a\", 2]", "remote_worker.include_files[1]", "a string"),
        ("remote_worker = 3", "remote_worker", "a table ([remote_worker] or [[remote_worker]])"),
        ("site_name = true", "site_name", "a string"),
    ])
    func wrongType(text: String, keyPath: String, expected: String) throws {
        do {
            _ = try ConfigFile.parse(text, path: "c.toml")
            Issue.record("no error for \(text)")
        } catch {
            guard case .wrongType(let source, let path, let want, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(source == "c.toml")
            #expect(path == keyPath)
            #expect(want == expected)
            #expect(error.errorDescription == "c.toml: at `\(keyPath)`: expected \(expected), found \(errorFound(error))")
        }
    }

    func errorFound(_ error: ConfigError) -> String {
        if case .wrongType(_, _, _, let found) = error { return found }
        return ""
    }

    @Test("a missing file says to check --config-path")
    func missingFile() {
        #expect(throws: ConfigError.fileNotFound(path: "/nonexistent/x.toml")) {
            try ConfigFile.load(path: "/nonexistent/x.toml")
        }
        #expect(ConfigError.fileNotFound(path: "/x").errorDescription?.contains("--config-path") == true)
    }
}
