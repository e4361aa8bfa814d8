import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer

extension ReaderSync {
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load articles from JSON Lines files (.jsonl) or scraped plain-text articles (.txt).",
            discussion: """
                JSON Lines: one article per line (id, section, title, summary, body, author, url, publishedAt, \
                updatedAt), or {"id": "…", "deleted": true} to delete. Bad lines are reported with their number \
                and skipped; the good ones are stored. Exits with status 1 when any line was rejected.
                Plain text: the title on the first line, then paragraphs; the site's boilerplate is dropped, \
                the id is the title's slug and the date the file's modification time.
                """)

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "Files to ingest.")
        var files: [String]

        @Option(help: "Section for plain-text articles.")
        var section = ""

        @Flag(help: "Print the counts as JSON.")
        var json = false

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one file to ingest") }
        }

        func run() async throws {
            // Read every file first: a missing file fails before anything is stored.
            var inputs: [(path: String, data: Data, modified: Date)] = []
            for path in files {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw CLIError("cannot read \(path)")
                }
                let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
                inputs.append((path, data, modified))
            }
            let service = try await database.openService(create: true)
            let progress = isatty(STDERR_FILENO) == 1
            var total = IngestReport()
            for input in inputs {
                let report: IngestReport
                if input.path.lowercased().hasSuffix(".txt") {
                    do {
                        let article = try PlainTextArticle.parse(
                            String(decoding: input.data, as: UTF8.self), date: input.modified, section: section)
                        report = try await service.ingest([.upsert(article)])
                    } catch let error as SyncError {
                        var rejected = IngestReport()
                        rejected.reject(line: 1, error.message)
                        report = rejected
                    }
                } else {
                    let started = Date()
                    report = try await service.ingest(jsonLines: input.data) { lines in
                        guard progress else { return }
                        let rate = Double(lines) / max(Date().timeIntervalSince(started), 0.001)
                        warnInline("\(input.path): \(lines) lines (\(Int(rate)) lines/s)")
                    }
                    if progress { warnInline(nil) }
                }
                if !json {
                    say("\(input.path): \(Self.counts(report))")
                    for error in report.errors { say("  line \(error.line): \(error.message)") }
                    if report.rejected > report.errors.count {
                        say("  … and \(report.rejected - report.errors.count) more rejected lines")
                    }
                }
                total.add(report)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                say(String(decoding: try encoder.encode(total), as: UTF8.self))
            } else if inputs.count > 1 {
                say("total: \(Self.counts(total))")
            }
            if total.rejected > 0 {
                throw CLIError("\(total.rejected) line(s) rejected; the other lines were stored")
            }
        }

        static func counts(_ r: IngestReport) -> String {
            "inserted \(r.inserted), updated \(r.updated), unchanged \(r.unchanged), deleted \(r.deleted), rejected \(r.rejected)"
        }
    }
}

/// Rewrites one progress line on stderr (a terminal); `nil` clears it.
private func warnInline(_ text: String?) {
    let line = text.map { "\r\u{1B}[K" + $0 } ?? "\r\u{1B}[K"
    FileHandle.standardError.write(Data(line.utf8))
}
