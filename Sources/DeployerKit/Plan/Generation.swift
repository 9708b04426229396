/// A generation: the Compose project that runs a site's worker services for one release, pinned
/// to it on the worker, so a new release's workers can start while the old ones drain.
public enum Generation {
    /// The project name of a new generation: the worker's site dir name, the release, and the
    /// operation's token (two generations of one release differ), in Compose's alphabet.
    public static func name(siteDirectory: String, release: String, token: String) -> String {
        let site = sanitized(siteDirectory.split(separator: "/").last.map(String.init) ?? "site")
        let name = "\(site.prefix(40))-\(sanitized(release).prefix(40))-\(token.prefix(6))"
        return name.first?.isLetter == true || name.first?.isNumber == true ? name : "g" + name
    }

    /// Lowercase letters, digits, `_` and `-`; anything else becomes `-`.
    static func sanitized(_ text: String) -> String {
        String(text.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") ? $0 : "-" })
    }
}
