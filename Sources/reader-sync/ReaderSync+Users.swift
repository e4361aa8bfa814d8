import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create and list users; revoke or replace their tokens.",
            subcommands: [Add.self, List.self, Revoke.self, Token.self])
    }
}

extension ReaderSync.Users {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user and print its token (only the token, on stdout; it is shown only this once).")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name: letters, digits and . _ - @")
        var name: String

        func run() async throws {
            say(try await database.withService(create: true) { try await $0.createUser(name: name).token })
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with their device counts.")

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            try await database.withService(create: false) { service in
                let users = try await service.users()
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    say(String(decoding: try encoder.encode(users), as: UTF8.self))
                    return
                }
                if users.isEmpty {
                    say("no users yet; create one with: reader-sync users add NAME --db \(database.shown)")
                    return
                }
                say(TextTable(header: ["NAME", "DEVICES", "CREATED", "TOKEN"],
                              rows: users.map { [$0.name, String($0.devices), $0.createdAt, $0.revokedAt.map { "revoked \($0)" } ?? "valid"] }).render())
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a user's token: it gets 401 from the next request on, also on a running server.",
            discussion: "The user's devices, state and conflicts stay. Issue a new token with: reader-sync users token NAME")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            try await database.withService(create: false) { try await $0.revokeToken(name: name) }
            say("revoked the token of \(name)")
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a user a new token and print it (only the token, on stdout; shown only this once).",
            discussion: "The old token, revoked or not, stops working. The user's devices, state and conflicts stay.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            say(try await database.withService(create: false) { try await $0.issueToken(name: name).token })
        }
    }
}
