import Foundation
import ReaderSyncCore

/// The benchmark's corpus when no `--corpus` file is given: JSON Lines of the same shape and sizes
/// as `shared/bench/gen_articles.py` (2.5–4 KB bodies, ~200-character summaries), generated here
/// so `bench` also runs where Python is missing. Deterministic for a seed.
struct BenchCorpus {
    private static let sections = ["politics", "world", "economy", "sport", "culture", "health", "tech", "kyiv"]
    private static let words = """
        the government council city minister report budget plan project market river bridge school hospital
        police court team season festival museum theatre company workers prices energy winter railway station
        village region border talks agreement election reform program support research students doctors
        farmers harvest exports investment bank currency inflation weather storm rescue volunteers museum
        """.split(whereSeparator: \.isWhitespace).map(String.init)
    private static let windowEnd: Int64 = 1_764_201_600_000  // 2026-11-27T00:00:00Z

    /// `count` articles `art-000001`…
    static func corpus(count: Int, seed: UInt64) -> [String] {
        (1...max(count, 1)).map { line(index: $0, revision: 0, seed: seed) }
    }

    /// `new` new articles after `count`, `updated` new versions and `deleted` deletions of existing ones.
    static func delta(count: Int, new: Int, updated: Int, deleted: Int, seed: UInt64) -> [String] {
        var rng = SeededRandom(seed: seed &+ 1)
        var ids = Array(1...count).shuffled(using: &rng)
        let updatedIds = ids.prefix(updated)
        ids.removeFirst(min(updated, ids.count))
        let deletedIds = ids.prefix(deleted)
        var lines = (count + 1...count + new).map { line(index: $0, revision: 0, seed: seed) }
        lines += updatedIds.map { line(index: $0, revision: 1, seed: seed) }
        lines += deletedIds.map { String(format: #"{"id":"art-%06d","deleted":true}"#, $0) }
        return lines
    }

    static func line(index: Int, revision: Int, seed: UInt64) -> String {
        var rng = SeededRandom(seed: seed &* 1_000_003 &+ UInt64(index) &* 7 &+ UInt64(revision))
        func sentence(_ words: Int) -> String {
            var s = (0..<words).map { _ in rng.pick(Self.words) }.joined(separator: " ")
            s = s.prefix(1).uppercased() + s.dropFirst() + "."
            return s
        }
        func text(length: Int) -> String {
            var out = ""
            while out.count < length { out += (out.isEmpty ? "" : " ") + sentence(rng.int(in: 8...16)) }
            return String(out.prefix(length))
        }
        let section = Self.sections[index % Self.sections.count]
        let title = text(length: rng.int(in: 60...90))
        let summary = text(length: rng.int(in: 170...230))
        var paragraphs: [String] = []
        let bodyLength = rng.int(in: 2500...3900)
        var total = 0
        while total < bodyLength {
            let p = text(length: rng.int(in: 300...600))
            paragraphs.append(p)
            total += p.count + 2
        }
        let published = windowEnd - Int64(rng.int(in: 3_600...2_592_000)) * 1000
        let updated = revision == 0 ? published : min(windowEnd, published + Int64(rng.int(in: 60...86_400)) * 1000)
        let fields: [String: String] = [
            "id": String(format: "art-%06d", index), "section": section, "title": title, "summary": summary,
            "body": paragraphs.joined(separator: "\n\n"), "author": "\(rng.pick(Self.words).capitalized) \(rng.pick(Self.words).capitalized)",
            "url": "https://news.example/\(section)/\(index)", "publishedAt": Timestamp.format(Timestamp.date(millis: published)),
            "updatedAt": Timestamp.format(Timestamp.date(millis: updated)),
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)
    }
}
