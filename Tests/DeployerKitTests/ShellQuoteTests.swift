import DeployerKit
import Foundation
import Testing

@Suite("Shell quoting of remote arguments")
struct ShellQuoteTests {
    static let hostile = [
        "plain", "with space", "it's", "\"double\"", "$(touch /tmp/pwned)", "`id`", "a;b", "a && b", "a|b",
        "line\nbreak", "tab\there", "naïve-ünïcødé-サイト", "", "-rf", "*", "~", "$HOME", "back\\slash",
        "'", "''", "end'", "!bang", "#hash", "{a,b}", "x>y", "(sub)",
    ]

    @Test("safe words pass unquoted")
    func safeWordsStay() {
        #expect(ShellQuote.quote("release_20261120_101500") == "release_20261120_101500")
        #expect(ShellQuote.quote("/home/frappe/frappe/sites/a.b/workspace") == "/home/frappe/frappe/sites/a.b/workspace")
    }

    @Test("metacharacters are single-quoted")
    func metacharactersQuoted() {
        #expect(ShellQuote.quote("a b") == "'a b'")
        #expect(ShellQuote.quote("$(x)") == "'$(x)'")
        #expect(ShellQuote.quote("`x`") == "'`x`'")
        #expect(ShellQuote.quote("a;b") == "'a;b'")
        #expect(ShellQuote.quote("") == "''")
        #expect(ShellQuote.quote("~") == "'~'")
    }

    @Test("an embedded single quote closes, escapes and reopens")
    func singleQuote() {
        #expect(ShellQuote.quote("it's") == #"'it'\''s'"#)
    }

    @Test("a real POSIX shell reads every quoted argument back unchanged", arguments: hostile)
    func roundTripThroughShell(argument: String) async throws {
        // printf writes each argument it receives, NUL-terminated, to a file read back byte for byte.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fd-quote-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let line = "printf '%s\\0' " + ShellQuote.commandLine([argument, "after"]) + " > " + ShellQuote.quote(file.path)
        let output = try await SubprocessRunner().run(Command("/bin/sh", ["-c", line]))
        #expect(output.exitCode == 0)
        let written = try Data(contentsOf: file)
        #expect(written == Data((argument + "\0after\0").utf8))
    }

    @Test("nothing a hostile argument contains is executed")
    func noExecution() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("fd-quote-\(UUID().uuidString)").path
        let attack = "$(touch \(marker))`touch \(marker)`;touch \(marker)"
        _ = try await SubprocessRunner().run(Command("/bin/sh", ["-c", "echo " + ShellQuote.quote(attack)]))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }
}
