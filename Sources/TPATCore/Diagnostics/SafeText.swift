import Foundation

/// How text taken from a model (node, tensor and op names, attributes, paths in it) is written
/// anywhere it could be read as something else: identifiers come from a safe ASCII alphabet,
/// comments and terminal lines get every control, non-ASCII-printable and bidi character escaped.
public enum SafeText {
    /// `[A-Za-z0-9_]` only: safe in C/C++ identifiers, CMake names and file names.
    public static func identifier(_ s: String) -> String {
        String(
            String.UnicodeScalarView(
                s.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }))
    }

    /// True for a C identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    public static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return !s.isEmpty && identifier(s) == s
    }

    /// Printable ASCII only; everything else (newline, ESC, NUL, non-ASCII, backslash) as `\u{..}`.
    /// Safe inside a `//` comment of C++/CUDA/CMake (`#`) and in Markdown table cells (`|` escaped).
    public static func comment(_ s: String, limit: Int = 120) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if out.count >= limit { out += "..."; break }
            if u.isASCII, u.value >= 0x20, u.value < 0x7F, u != "\\", u != "|", u != "`", u != "?" {
                out.unicodeScalars.append(u)
            } else {
                out += "\\u{\(String(u.value, radix: 16))}"
            }
        }
        return out
    }

    /// For the terminal: control characters (C0, DEL, C1), line and paragraph separators and
    /// bidi overrides escaped as `\u{..}` (so a name cannot start a new line, move the cursor or
    /// reorder what is shown); other Unicode is kept.
    public static func terminal(_ s: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count)
        for u in s.unicodeScalars {
            let v = u.value
            let unsafe =
                v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029
                || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C
            if unsafe { out += "\\u{\(String(v, radix: 16))}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// A whole multi-line text for the terminal: each line made safe, the line breaks kept.
    public static func terminalLines(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { terminal(String($0)) }.joined(separator: "\n")
    }

    /// JSON text with DEL, C1 controls, line/paragraph separators and bidi controls written as
    /// `\uXXXX` (JSONEncoder leaves them raw; they can only occur inside strings, so the JSON
    /// means the same and is safe to show on a terminal).
    public static func jsonEscapingInvisibles(_ json: Data) -> Data {
        let text = String(decoding: json, as: UTF8.self)
        var out = ""
        for u in text.unicodeScalars {
            let v = u.value
            if (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || (0x202A...0x202E).contains(v)
                || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C
            {
                out += String(format: "\\u%04x", v)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return Data(out.utf8)
    }

    /// A Double from model data as text, without trapping on NaN, infinities or huge values.
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-inf" : "+inf" }
        if v == v.rounded(), let i = Int64(exactly: v) { return "\(i)" }
        return "\(v)"
    }
}
