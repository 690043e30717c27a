/// Writing CSV files (RFC 4180) that spreadsheets and `csv` readers take back unchanged.
enum CSV {
    /// One field: quoted when it holds a comma, quote, CR or LF (quotes doubled); nil is empty.
    /// Checked per Unicode scalar: Swift treats "\r\n" as one Character equal to neither "\r" nor "\n".
    static func field(_ value: String?) -> String {
        guard let value else { return "" }
        return value.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
    }
}
