import Foundation

/// The shapes of names and paths the tool accepts, checked before anything touches a worker.
///
/// These are the tool's first defence against a value that would be read as an option or a shell
/// word on the worker; quoting is the second.
public enum InputRules {
    /// A site or release name is a plain hostname-like name: letters, digits, `.`, `-`, `_`; no `..`.
    public static func plainNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        if name.count > 253 { return "it is longer than 253 characters" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".unicodeScalars)
        if let bad = name.unicodeScalars.first(where: { !allowed.contains($0) }) {
            return "it contains \(describe(bad)); use letters, digits, '.', '-' and '_' only"
        }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "it must start with a letter or digit" }
        if name.contains("..") { return "it contains '..'" }
        return nil
    }

    /// A server is a hostname, an IPv4 address or an IPv6 address; never something ssh reads as an option.
    public static func serverProblem(_ server: String) -> String? {
        if server.isEmpty { return "it is empty" }
        if server.hasPrefix("-") { return "it starts with '-'" }
        // One colon is HOST:PORT (an IPv6 address has at least two).
        if server.filter({ $0 == ":" }).count == 1 {
            return "it includes a port; give the host alone and the port with --ssh-port (ssh_port in the config file)"
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%".unicodeScalars)
        if let bad = server.unicodeScalars.first(where: { !allowed.contains($0) }) {
            return "it contains \(describe(bad)); give a hostname or an IP address"
        }
        return nil
    }

    /// An SSH user name as POSIX systems accept it.
    public static func userProblem(_ user: String) -> String? {
        if user.isEmpty { return "it is empty" }
        if user.hasPrefix("-") { return "it starts with '-'" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".unicodeScalars)
        if let bad = user.unicodeScalars.first(where: { !allowed.contains($0) }) {
            return "it contains \(describe(bad))"
        }
        return nil
    }

    /// A TCP port.
    public static func portProblem(_ port: Int) -> String? {
        (1...65535).contains(port) ? nil : "\(port) is not a TCP port (1-65535)"
    }

    /// The worker's workspace: an absolute, normalized path without control characters.
    public static func remotePathProblem(_ path: String) -> String? {
        if !path.hasPrefix("/") { return "it must be an absolute path" }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "it contains a control character"
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.contains(where: { $0 == ".." || $0 == "." }) { return "it contains '.' or '..' components" }
        if parts.count < 2 { return "it is too close to / to be a workspace" }
        return nil
    }

    /// An include path: relative to the workspace, normalized, without control characters.
    public static func includePathProblem(_ path: String) -> String? {
        if path.isEmpty { return "it is empty" }
        if path.hasPrefix("/") { return "it is absolute; give a path relative to the site's workspace" }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "it contains a control character"
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.contains("..") { return "it contains '..' and would leave the workspace" }
        if parts.isEmpty || parts.allSatisfy({ $0 == "." }) { return "it names the workspace itself" }
        let reserved = ["deployment-data", "frappe-bench"]
        if let first = parts.first(where: { $0 != "." }), reserved.contains(String(first)) || first.hasPrefix("release_") {
            return "it is already synced by every sync (\(first))"
        }
        if let first = parts.first(where: { $0 != "." }), first.hasPrefix(".fd-") {
            return "names begin with '.fd-' are the tool's own working directories on the worker (staging, swaps), which a sync removes; rename it"
        }
        return nil
    }

    /// The worker's workspace sits in the site's own directory, as FM keeps it (`…/SITE/workspace`):
    /// its parent holds the compose files and the tool's state, and is what a sync manages.
    public static func workspaceSiteProblem(_ path: String, site: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts.last == "workspace", parts[parts.count - 2] == site else {
            return "it is not the workspace in the site's own directory on the worker: give …/\(site)/workspace (FM's layout, e.g. /home/frappe/frappe/sites/\(site)/workspace)"
        }
        return nil
    }

    /// An ssh_config file given with --ssh-config: a readable regular file whose path rsync's `-e`
    /// can carry (no single quote).
    public static func sshConfigProblem(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "\(path) does not exist" }
        if isDirectory.boolValue { return "\(path) is a directory; give an ssh_config file" }
        if !FileManager.default.isReadableFile(atPath: path) { return "\(path) is not readable" }
        if path.contains("'") { return "\(path) contains a single quote, which rsync's -e cannot carry; use a path without one" }
        return nil
    }

    /// Normal form of a valid include path: no `.` components, no doubled or trailing slashes.
    public static func normalizedIncludePath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }

    static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case " ": return "a space"
        case "\n": return "a newline"
        case "\t": return "a tab"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f { return "a control character" }
            return "'\(scalar)'"
        }
    }
}
