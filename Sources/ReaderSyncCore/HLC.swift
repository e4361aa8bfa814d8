/// A hybrid logical clock timestamp, stamped by the device that made a change.
///
/// Timestamps order by `(wall, counter)`; ties between devices are broken by device id
/// (see ``HLC/orders(_:before:_:_:)``), so every pair of writes has one winner under
/// last-writer-wins, on every machine.
///
/// ```swift
/// var clock = HybridClock()
/// let stamp = clock.tick(physicalMillis: 1_764_000_000_000)
/// ```
public struct HLC: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, as the device's clock (or a later observed stamp) said.
    public var wall: Int64
    /// Logical counter that orders stamps sharing one `wall`.
    public var counter: Int64

    public init(wall: Int64, counter: Int64) {
        self.wall = wall
        self.counter = counter
    }

    /// The stamp that orders before every real one.
    public static let zero = HLC(wall: 0, counter: 0)

    public static func < (lhs: HLC, rhs: HLC) -> Bool {
        (lhs.wall, lhs.counter) < (rhs.wall, rhs.counter)
    }

    /// The total order of writes: `(wall, counter, deviceId)`, device ids by their UTF-8 bytes
    /// (``ExactText``), so two device ids that differ only in Unicode normalization still order.
    ///
    /// - Returns: whether the write stamped `lhs` by `lhsDevice` orders before `rhs` by `rhsDevice`.
    public static func orders(_ lhs: HLC, before rhs: HLC, _ lhsDevice: String, _ rhsDevice: String) -> Bool {
        if lhs != rhs { return lhs < rhs }
        return lhsDevice.exact < rhsDevice.exact
    }

    public var description: String { "\(wall).\(counter)" }
}

/// The state of a device's hybrid logical clock.
///
/// `tick` stamps a local change; `observe` moves the clock past a stamp seen from elsewhere,
/// so a change made after seeing another device's change orders after it, whatever the
/// physical clocks say.
public struct HybridClock: Sendable, Hashable, Codable {
    /// The newest stamp this clock has issued or observed.
    public private(set) var last: HLC

    public init(last: HLC = .zero) {
        self.last = last
    }

    /// Issues a stamp for a local change at physical time `physicalMillis`.
    public mutating func tick(physicalMillis: Int64) -> HLC {
        if physicalMillis > last.wall {
            last = HLC(wall: physicalMillis, counter: 0)
        } else if last.counter < .max {
            last = HLC(wall: last.wall, counter: last.counter + 1)
        } else if last.wall < .max {
            // The counter is spent (only a stamp from a faulty device gets it there): next millisecond.
            last = HLC(wall: last.wall + 1, counter: 0)
        }
        // At (max, max) the clock cannot move on; the stamp repeats rather than the app crashing.
        return last
    }

    /// Moves the clock past `remote`, a stamp observed in data from another device or the server.
    public mutating func observe(_ remote: HLC) {
        if remote > last { last = remote }
    }
}
