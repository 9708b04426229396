/// POSIX `cksum`'s CRC (CRC-32, polynomial 0x04C11DB7, the length folded in, complemented), so the
/// tool can name its worker script the way `cksum` on the worker does. An identity check (which
/// version of the script), never an authentication: that is the SSH key's.
public enum PosixChecksum {
    private static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte) << 24
        for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
        return crc
    }

    /// `cksum`'s output for `bytes` without the file name: "CRC SIZE".
    public static func line(_ bytes: some Collection<UInt8>) -> String {
        var crc: UInt32 = 0
        func add(_ byte: UInt8) { crc = (crc << 8) ^ table[Int((crc >> 24) ^ UInt32(byte))] }
        for byte in bytes { add(byte) }
        var length = bytes.count
        while length > 0 {
            add(UInt8(length & 0xff))
            length >>= 8
        }
        return "\(~crc) \(bytes.count)"
    }
}
