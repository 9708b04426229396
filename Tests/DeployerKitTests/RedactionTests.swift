import DeployerKit
import Testing

/// No output carries a password or token from a site's configuration (issue 11.2).
@Suite("Redaction")
struct RedactionTests {
    @Test("URL credentials are masked; the user, host and everything else stay", arguments: [
        ("redis://:PASSWORD@10.0.0.1:11000", "redis://:***@10.0.0.1:11000"),
        ("redis://default:PASSWORD@main:11000/0", "redis://default:***@main:11000/0"),
        ("kept, but it has redis_queue = rediss://u:p%40ss@h:1 (--force)", "kept, but it has redis_queue = rediss://u:***@h:1 (--force)"),
        ("mysql://root:pw@db/x and redis://:x@q:1", "mysql://root:***@db/x and redis://:***@q:1"),
        ("redis://main:11000", "redis://main:11000"),
        ("ssh://frappe@10.0.0.2:22", "ssh://frappe@10.0.0.2:22"),
        ("frappe@10.0.0.2: release_1 is live", "frappe@10.0.0.2: release_1 is live"),
    ])
    func urls(input: String, expected: String) {
        #expect(Redaction.redacted(input) == expected)
    }

    @Test("values of secret keys are masked in JSON, TOML and shell forms", arguments: [
        (#"{"db_password": "hunter2", "db_host": "10.0.0.1"}"#, #"{"db_password": "***", "db_host": "10.0.0.1"}"#),
        (#"{"encryption_key":"abc=","x":1}"#, #"{"encryption_key":"***","x":1}"#),
        (#"{"admin_password": "with \"quote\"", "n": 2}"#, #"{"admin_password": "***", "n": 2}"#),
        ("db_password = \"hunter2\"", "db_password = ***"),
        ("DB_PASSWORD=hunter2 other=1", "DB_PASSWORD=*** other=1"),
        ("--api-token=abc123 --x", "--api-token=*** --x"),
        ("github_token: ghp_abc", "github_token: ***"),
        ("db_host = 10.0.0.1", "db_host = 10.0.0.1"),
        ("release_20261201 is live (was release_1)", "release_20261201 is live (was release_1)"),
    ])
    func secretKeys(input: String, expected: String) {
        #expect(Redaction.redacted(input) == expected)
    }

    @Test("a config value is shown under its key only when the key is not a secret")
    func display() {
        #expect(Redaction.display(key: "db_password", value: "hunter2") == "***")
        #expect(Redaction.display(key: "encryption_key", value: "k") == "***")
        #expect(Redaction.display(key: "db_host", value: "10.0.0.1") == "10.0.0.1")
        #expect(Redaction.display(key: "redis_queue", value: "redis://:pw@h:1") == "redis://:***@h:1")
        #expect(!Redaction.isSecretKey("redis_queue") && !Redaction.isSecretKey("socketio_port") && !Redaction.isSecretKey("db_name"))
    }
}
