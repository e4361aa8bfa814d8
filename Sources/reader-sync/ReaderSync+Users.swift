import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer

extension ReaderSync {
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create and list users.",
            subcommands: [Add.self, List.self])
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
            let service = try await database.openService(create: true)
            do {
                say(try await service.createUser(name: name).token)
            } catch let error as SyncError {
                throw CLIError(error.message)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with their device counts.")

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            let service = try await database.openService(create: false)
            let users = try await service.store.users()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                say(String(decoding: try encoder.encode(users), as: UTF8.self))
                return
            }
            if users.isEmpty {
                say("no users yet; create one with: reader-sync users add NAME --db \(database.path)")
                return
            }
            say(TextTable(header: ["NAME", "DEVICES", "CREATED"],
                          rows: users.map { [$0.name, String($0.devices), $0.createdAt] }).render())
        }
    }
}
