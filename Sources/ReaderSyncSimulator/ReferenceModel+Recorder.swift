import ReaderSyncCore

extension ReferenceModel {
    /// Replays the recorder's pushes to the current server database from `position` on, in the
    /// server's order, and stops before the first push whose outcome is not known yet: a push
    /// that got no answer and that no later answer has decided. Replaying past it would merge the
    /// user's later writes before a write the server may have committed before them; once later
    /// answers decide it, the next call goes on from there. A push found committed is replayed at
    /// its own place, and the results the model infers for it are stored back in the recorder.
    ///
    /// Pushes to an earlier database (before a restore) are skipped: the model of the restored
    /// database starts from the snapshot's.
    ///
    /// - Returns: the position to go on from.
    mutating func catchUp(with recorder: PushRecorder, from position: Int) -> Int {
        let incarnation = recorder.incarnation
        let entries = recorder.entries(from: position)
        for index in entries.indices {
            let entry = entries[index]
            guard entry.incarnation == incarnation else { continue }
            switch entry.answer {
            case .answered(let response):
                replay(user: entry.user, request: entry.request, results: response.results, serverMillis: entry.serverMillis)
            case .committed(let commit):
                let results = replayUnanswered(user: entry.user, request: entry.request, commit: commit, serverMillis: entry.serverMillis)
                recorder.setResults(results, at: index)
            case .unanswered:
                return index
            case .notCommitted, .undecided:
                break
            }
        }
        return max(position, entries.endIndex)
    }
}
