/// POSIX shell quoting for every argument that crosses to a remote shell.
///
/// OpenSSH joins its remote arguments with spaces and hands the string to the login shell, so each
/// argument must be quoted exactly once, here. Single quotes are used because inside them nothing is
/// special to a POSIX shell; an embedded single quote closes the quote, adds `\'`, and reopens.
public enum ShellQuote {
    /// Characters that never need quoting; everything else is wrapped in single quotes.
    private static let safe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-".unicodeScalars)

    /// Quotes one argument so that a POSIX shell reads it back as exactly that string.
    public static func quote(_ argument: String) -> String {
        if !argument.isEmpty, argument.unicodeScalars.allSatisfy({ safe.contains($0) }) {
            return argument
        }
        return "'" + argument.replacing("'", with: #"'\''"#) + "'"
    }

    /// Quotes each argument and joins them with single spaces: one remote command line.
    public static func commandLine(_ arguments: [String]) -> String {
        arguments.map(quote).joined(separator: " ")
    }
}
