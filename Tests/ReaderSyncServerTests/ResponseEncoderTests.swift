import Foundation
import ReaderSyncCore
import Testing
@testable import ReaderSyncServer

@Suite("The response encoder writes what JSONEncoder would")
struct ResponseEncoderTests {
    static let hostile = [
        "", "plain", "quote \" backslash \\ slash / done", "controls \u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F}",
        "emoji \u{1F4F0}\u{1F469}\u{200D}\u{1F4BB} RTL \u{5E9}\u{5DC} U+2028 \u{2028} U+FFFF \u{FFFF}", "é combining e\u{301}",
        String(repeating: "long ", count: 2000) + "\"",
    ]

    static func randomPage(_ random: inout SeededRandom) -> PullResponse {
        func text() -> String { Self.text(&random) }
        let articles = (0..<random.int(in: 0...5)).map { _ in
            ArticleDTO(id: text(), section: text(), title: text(), summary: text(), body: text(), author: text(), url: text(),
                       publishedAt: "2026-11-20T09:00:00Z", updatedAt: text(), version: Int64(random.int(in: 1...Int(Int32.max))))
        }
        return PullResponse(articles: articles, deletedArticleIds: (0..<random.int(in: 0...3)).map { _ in text() },
                            states: randomStates(&random), cursor: text(), hasMore: random.chance(0.5), epoch: text())
    }

    static func text(_ random: inout SeededRandom) -> String {
        random.chance(0.5) ? random.pick(hostile)
            : String(String.UnicodeScalarView((0..<random.int(in: 0...40)).compactMap { _ in
                Unicode.Scalar(UInt32(random.pick([random.int(in: 0...0x7F), random.int(in: 0...0xFFFF), random.int(in: 0...0x10FFFF)])))
            }))
    }

    static func randomStates(_ random: inout SeededRandom) -> [StateDTO] {
        func text() -> String { Self.text(&random) }
        func writer() -> FieldWriter? {
            random.chance(0.5) ? FieldWriter(deviceId: text(), hlc: HLC(wall: Int64(random.int(in: 0...Int(Int32.max))), counter: Int64(random.int(in: 0...9)))) : nil
        }
        return (0..<random.int(in: 0...5)).map { _ in
            StateDTO(articleId: text(), read: random.chance(0.5), bookmarked: random.chance(0.5),
                     progress: random.pick([0, 1, 0.5, 0.1, 1e-5, 0.333333333333, Double(random.int(in: 0...100)) / 100]),
                     version: Int64(random.int(in: 1...1000)), hlc: HLC(wall: .max, counter: .min),
                     writers: StateWriters(read: writer(), bookmarked: writer(), progress: writer()))
        }
    }

    static func randomPush(_ random: inout SeededRandom) -> PushResponse {
        func optional(_ value: Int64) -> Int64? { random.chance(0.5) ? value : nil }
        let results = (0..<random.int(in: 0...6)).map { i in
            MutationResult(id: Int64(i), outcome: random.pick(MutationOutcome.allCases),
                           reason: random.chance(0.3) ? text(&random) : nil,
                           conflictId: optional(Int64(random.int(in: 1...Int(Int32.max)))), seq: optional(.max))
        }
        return PushResponse(lastMutationId: Int64(random.int(in: 0...Int(Int32.max))), results: results,
                            states: randomStates(&random), epoch: text(&random))
    }

    /// `ours` decodes to `value`, and parses to the same JSON object as `JSONEncoder`'s document.
    static func expectSameDocument<T: Codable & Equatable>(_ value: T, ours: [UInt8]) throws {
        let reference = JSONEncoder()
        reference.outputFormatting = [.withoutEscapingSlashes]
        #expect(try JSONDecoder().decode(T.self, from: Data(ours)) == value)
        let a = try JSONSerialization.jsonObject(with: Data(ours)) as? NSDictionary
        let b = try JSONSerialization.jsonObject(with: try reference.encode(value)) as? NSDictionary
        #expect(a != nil && a == b)
    }

    @Test("hostile pages decode to the same value, and parse to the same JSON object as JSONEncoder's", arguments: [1, 2, 3, 4] as [UInt64])
    func sameDocument(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let page = Self.randomPage(&random)
            try Self.expectSameDocument(page, ours: ResponseEncoder.encode(page))
        }
    }

    @Test("hostile push results decode to the same value, and parse to the same JSON object as JSONEncoder's", arguments: [1, 2] as [UInt64])
    func samePushDocument(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let response = Self.randomPush(&random)
            try Self.expectSameDocument(response, ours: ResponseEncoder.encode(response))
        }
    }
}
