import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load articles from JSON Lines files (.jsonl) or scraped plain-text articles (.txt).",
            discussion: """
                JSON Lines: one article per line (id, section, title, summary, body, author, url, publishedAt, \
                updatedAt), or {"id": "…", "deleted": true} to delete. Dates are RFC 3339 \
                (2026-11-27T08:15:00Z, 2026-11-27T10:15:00.250+02:00) and must exist: 2026-02-30 or hour 24 is \
                refused, never rolled over. Bad lines are reported with their number and skipped; the good ones \
                are stored. Exits with status 1 when any line was rejected.
                Plain text: the title on the first line, then paragraphs; the site's boilerplate is dropped. \
                The id is the file's name (election-monday.txt), so stories with the same headline in different \
                files are different articles, re-ingesting a file changes nothing, and an edited file updates its \
                own article; give each story its own file name. Two files of the same name (in different \
                directories) in one run are refused. The date is the file's modification time.
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
            try Self.refuseSharedNames(inputs.map(\.path))
            try await database.withService(create: true) { service in
                let progress = isatty(STDERR_FILENO) == 1
                var total = IngestReport()
                for input in inputs {
                    let report: IngestReport
                    if Self.isPlainText(input.path) {
                        do {
                            let article = try PlainTextArticle.parse(
                                String(decoding: input.data, as: UTF8.self), fileName: input.path, date: input.modified,
                                section: section)
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
                    if Self.isPlainText(input.path), report.updated > 0 {
                        // The one case a derived id cannot tell apart: said, never replaced silently (on
                        // stderr with --json, so that stdout stays one JSON document).
                        let note = "note: an article of this file's name already existed with other text; it was taken as a "
                            + "correction of that story (readers' read and bookmark marks stay). If it is another story, "
                            + "give the file another name and ingest it again."
                        if json { warn("\(input.path): \(note)") } else { say("  " + note) }
                    }
                    total.add(report)
                }
                if json {
                    say(try prettyJSON(total))
                } else if inputs.count > 1 {
                    say("total: \(Self.counts(total))")
                }
                if total.rejected > 0 {
                    throw CLIError("\(total.rejected) line(s) rejected; the other lines were stored")
                }
            }
        }

        /// Refuses, before anything is stored, two different `.txt` files whose names (their
        /// articles' ids) are the same: `mon/story.txt` and `tue/story.txt` would otherwise be one
        /// article, the second taken for a correction of the first.
        static func refuseSharedNames(_ paths: [String]) throws {
            // Keyed by exact bytes, as the database tells ids apart (see ExactText).
            var first: [ExactText: (path: String, file: String)] = [:]
            for path in paths where isPlainText(path) {
                // A name that cannot be an id is reported with that file's counts, not here.
                guard let id = try? PlainTextArticle.id(fileName: path) else { continue }
                // The same file named twice (`a.txt ./a.txt`) is one story, ingested twice.
                let file = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
                if let earlier = first[id.exact], !earlier.file.isExactly(file) {
                    throw CLIError("""
                        \(earlier.path) and \(path) have the same name, \(id), which is a plain-text article's id; \
                        rename one so they stay two articles (nothing was stored)
                        """)
                }
                first[id.exact] = first[id.exact] ?? (path, file)
            }
        }

        /// Whether the file at `path` is a scraped plain-text article (`.txt`, any case) rather than JSON Lines.
        static func isPlainText(_ path: String) -> Bool {
            path.lowercased().hasSuffix(".txt")
        }

        static func counts(_ r: IngestReport) -> String {
            "inserted \(r.inserted), updated \(r.updated), unchanged \(r.unchanged), deleted \(r.deleted), rejected \(r.rejected)"
                + (r.expired > 0 ? ", too old for the retention \(r.expired)" : "")
        }
    }
}

/// Rewrites one progress line on stderr (a terminal); `nil` clears it.
private func warnInline(_ text: String?) {
    let line = text.map { "\r\u{1B}[K" + $0 } ?? "\r\u{1B}[K"
    FileHandle.standardError.write(Data(line.utf8))
}
