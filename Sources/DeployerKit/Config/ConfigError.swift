import Foundation

/// Why configuration could not be read or does not make sense; each message names the source and key.
public enum ConfigError: Error, Equatable, LocalizedError {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case syntax(path: String, line: Int, column: Int, message: String)
    case unknownKey(source: String, keyPath: String, allowed: [String])
    case wrongType(source: String, keyPath: String, expected: String, found: String)
    case invalidValue(source: String, keyPath: String, problem: String)
    case missing(keyPath: String, hint: String)
    case conflict(message: String)

    public var errorDescription: String? {
        switch self {
        case .fileNotFound(let path):
            return "config file \(path) does not exist: check --config-path"
        case .unreadable(let path, let reason):
            return "config file \(path) cannot be read: \(reason)"
        case .syntax(let path, let line, let column, let message):
            return "\(path):\(line):\(column): TOML syntax error: \(message)"
        case .unknownKey(let source, let keyPath, let allowed):
            return "\(source): unknown key `\(keyPath)`; allowed here: \(allowed.joined(separator: ", "))"
        case .wrongType(let source, let keyPath, let expected, let found):
            return "\(source): at `\(keyPath)`: expected \(expected), found \(found)"
        case .invalidValue(let source, let keyPath, let problem):
            return "\(source): at `\(keyPath)`: \(problem)"
        case .missing(let keyPath, let hint):
            return "no \(keyPath) given: \(hint)"
        case .conflict(let message):
            return message
        }
    }
}
