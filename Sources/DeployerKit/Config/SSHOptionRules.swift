/// Which `ssh -o` options an operator may add: any `Key=Value` but those the tool relies on for
/// safety (host keys always checked, never a prompt) or for its one shared connection.
public enum SSHOptionRules {
    static let reserved: Set<String> = ["stricthostkeychecking", "batchmode", "controlmaster", "controlpath", "controlpersist",
                                        "requesttty", "remotecommand"]

    /// Why an operator's `-o` option cannot be used, or nil.
    public static func problem(_ option: String) -> String? {
        guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
            return "'\(option.escapedForMessage)' is not of the form Key=Value (as ssh -o takes it)"
        }
        let key = option[..<equals].lowercased()
        if key.contains(where: { !$0.isLetter }) { return "'\(option.escapedForMessage)' does not start with an ssh option name" }
        if reserved.contains(key) {
            return "\(option[..<equals]) is set by frappe-deployer itself (host keys are always checked, use --accept-new-host-key to trust a new one; "
                + "one shared connection; no terminal and no configured remote command)"
        }
        if option.unicodeScalars.contains(where: { $0.value < 0x20 }) { return "'\(option.escapedForMessage)' contains a control character" }
        if option.contains("'") {
            return "'\(option.escapedForMessage)' contains a single quote, which rsync's -e cannot carry to ssh; write the value without quotes, or in double quotes"
        }
        return nil
    }
}
