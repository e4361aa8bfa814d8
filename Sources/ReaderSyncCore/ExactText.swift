/// Text compared, hashed and ordered by its UTF-8 bytes: the one identity rule for identifiers.
///
/// Swift's `String` `==`, `<` and `Hashable` follow Unicode canonical equivalence, so `"café"`
/// with a precomposed `é` (U+00E9) equals `"café"` with `e` + U+0301. The stores do not: SQLite's
/// default `BINARY` collation (and PostgreSQL's `"C"` collation) compare bytes, so those are two
/// different articles there. Wherever an identifier (article id, device id, epoch) is compared,
/// hashed, grouped, deduplicated, sorted or used as a key in Swift, it goes through `ExactText`
/// (or ``Swift/String/isExactly(_:)``), so every layer agrees with the database byte for byte.
///
/// Ordering is `memcmp` of the UTF-8 bytes, shorter first on a common prefix: SQLite's `BINARY`
/// collation (sqlite.org/datatype3.html#collation).
///
/// ```swift
/// let precomposed = "caf\u{E9}", decomposed = "cafe\u{301}"
/// precomposed == decomposed                      // true: Swift's canonical equivalence
/// precomposed.exact == decomposed.exact          // false: different bytes, different articles
/// ```
public struct ExactText: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The text, unchanged.
    public var string: String

    public init(_ string: String) {
        self.string = string
    }

    public init(stringLiteral value: String) {
        self.string = value
    }

    public static func == (lhs: ExactText, rhs: ExactText) -> Bool {
        lhs.string.isExactly(rhs.string)
    }

    public static func < (lhs: ExactText, rhs: ExactText) -> Bool {
        lhs.string.utf8.lexicographicallyPrecedes(rhs.string.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        var string = string
        string.withUTF8 { bytes in
            hasher.combine(bytes.count)
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        }
    }

    public var description: String { string }
}

extension String {
    /// This text under the byte-for-byte identity rule of ``ExactText``.
    public var exact: ExactText { ExactText(self) }

    /// Whether this text and `other` have the same UTF-8 bytes (not merely canonically
    /// equivalent, as `==` checks).
    public func isExactly(_ other: String) -> Bool {
        utf8.elementsEqual(other.utf8)
    }
}

extension Optional where Wrapped == String {
    /// Whether both are `nil` or both hold the same UTF-8 bytes (see ``ExactText``).
    public func isExactly(_ other: String?) -> Bool {
        switch (self, other) {
        case (nil, nil): return true
        case (let a?, let b?): return a.isExactly(b)
        default: return false
        }
    }
}
