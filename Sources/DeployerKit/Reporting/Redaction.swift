import Foundation

/// Keeps secrets from a site's configuration out of everything the tool prints: every line to
/// standard output or standard error goes through `redacted` (see `Output`), and messages that
/// quote a config value name it with `display(key:value:)`.
public enum Redaction {
    /// What replaces a secret.
    public static let mask = "***"

    /// What in a key's name makes its value a secret (the one list `isSecretKey` and the
    /// patterns of `redacted` share).
    static let secretWords = ["password", "passwd", "secret", "token", "_key", "apikey", "credential"]

    /// Config keys whose values are secrets: anything naming a password, secret, token or key
    /// (`db_password`, `admin_password`, `encryption_key`, `api_secret`, `private_key`, …).
    public static func isSecretKey(_ key: String) -> Bool {
        let key = key.lowercased()
        return secretWords.contains { key.contains($0) } || key == "key"
    }

    /// `value` as a message may quote it under `key`: masked when the key names a secret,
    /// otherwise with any URL credentials masked.
    public static func display(key: String, value: Any) -> String {
        isSecretKey(key) ? mask : redacted("\(value)")
    }

    /// `text` with the password of every URL (`redis://user:PASS@host`, `redis://:PASS@host`)
    /// and the value of every secret key written as JSON (`"db_password": "…"`), TOML or
    /// shell-style (`db_password = …`, `DB_PASSWORD=…`) replaced by the mask.
    public static func redacted(_ text: String) -> String {
        guard text.contains("@") || text.contains(":") || text.contains("=") else { return text }
        var result = text
        for (expression, template) in rules {
            let range = NSRange(result.startIndex..., in: result)
            result = expression.stringByReplacingMatches(in: result, range: range, withTemplate: template)
        }
        return result
    }

    private static let rules: [(NSRegularExpression, String)] = {
        let secretWord = "[A-Za-z0-9_.-]*(?:\(secretWords.joined(separator: "|")))[A-Za-z0-9_.-]*"
        let patterns: [(String, String)] = [
            // URL userinfo with a password: keep the scheme and user, mask what follows the colon.
            ("([A-Za-z][A-Za-z0-9+.-]*://[^/@\\s:\"']*):([^@\\s/\"']+)@", "$1:\(mask)@"),
            // "secret_key": "value" (JSON), with or without quotes around the value.
            ("(\"\(secretWord)\"\\s*:\\s*)(\"(?:[^\"\\\\]|\\\\.)*\"|[^,}\\s]+)", "$1\"\(mask)\""),
            // secret_key = value, secret_key=value, --secret-key=value (TOML, shell, options).
            ("(?<![A-Za-z0-9_\"])(\(secretWord)\\s*[=:]\\s*)(\"[^\"]*\"|'[^']*'|[^\\s,;\"']+)", "$1\(mask)"),
        ]
        return patterns.map { (try! NSRegularExpression(pattern: $0.0, options: [.caseInsensitive]), $0.1) }
    }()
}

/// The tool's one way to print: every line goes through `Redaction.redacted`.
public enum Output {
    public static func standardOutput(_ text: String) {
        FileHandle.standardOutput.write(Data((Redaction.redacted(text) + "\n").utf8))
    }

    public static func standardError(_ text: String, newline: Bool = true) {
        FileHandle.standardError.write(Data((Redaction.redacted(text) + (newline ? "\n" : "")).utf8))
    }
}
