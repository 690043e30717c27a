import Foundation

/// A compiled regular expression that can cross concurrency domains: `NSRegularExpression` is
/// immutable after creation and documented thread-safe for matching.
public final class CompiledRegex: @unchecked Sendable, CustomStringConvertible {
    public let pattern: String
    let regex: NSRegularExpression

    public init(_ pattern: String) throws {
        self.pattern = pattern
        self.regex = try NSRegularExpression(pattern: pattern)
    }

    /// The captured groups of the first match (group 0 = whole match), or nil if no match.
    public func firstMatch(in string: String) -> [String?]? {
        let range = NSRange(string.startIndex..<string.endIndex, in: string)
        guard let match = regex.firstMatch(in: string, range: range) else { return nil }
        return (0..<match.numberOfRanges).map { index in
            let r = match.range(at: index)
            guard r.location != NSNotFound, let swiftRange = Range(r, in: string) else { return nil }
            return String(string[swiftRange])
        }
    }

    public var description: String { pattern }
}

/// A shell-style glob over '/'-separated relative paths: `*` (within one component), `?`, `[abc]`,
/// and `**` (any number of components, including none), e.g. `**/Imgs/*.jpg`.
public struct GlobPattern: Sendable, CustomStringConvertible, Equatable {
    public let pattern: String
    private let compiled: CompiledRegex

    public init(_ pattern: String) throws {
        self.pattern = pattern
        self.compiled = try CompiledRegex(Self.regexSource(for: pattern))
    }

    public static func == (lhs: GlobPattern, rhs: GlobPattern) -> Bool { lhs.pattern == rhs.pattern }

    public func matches(_ path: String) -> Bool { compiled.firstMatch(in: path) != nil }

    public var description: String { pattern }

    static func containsMagic(_ string: String) -> Bool { string.contains { "*?[".contains($0) } }

    static func regexSource(for glob: String) -> String {
        var out = "^"
        let chars = Array(glob)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                if i + 1 < chars.count, chars[i + 1] == "*" {
                    // `**/` = zero or more whole components; a trailing `**` = everything below.
                    if i + 2 < chars.count, chars[i + 2] == "/" {
                        out += "(?:[^/]*/)*"
                        i += 3
                    } else {
                        out += ".*"
                        i += 2
                    }
                    continue
                }
                out += "[^/]*"
            case "?":
                out += "[^/]"
            case "[":
                if let close = chars[(i + 1)...].firstIndex(of: "]") {
                    var body = String(chars[(i + 1)..<close])
                    if body.hasPrefix("!") { body = "^" + body.dropFirst() }
                    out += "[" + body.replacingOccurrences(of: "\\", with: "\\\\") + "]"
                    i = close + 1
                    continue
                }
                out += "\\["
            default:
                out += NSRegularExpression.escapedPattern(for: String(c))
            }
            i += 1
        }
        return out + "$"
    }
}
