using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Analysis;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Training;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>
/// One experiment's results: a directory holding
///   trials.jsonl     one JSON line per finished trial, appended under an exclusive lock (one write + fsync);
///                    every line is checked when read (<see cref="Read"/>): a torn line (a writer killed mid-write),
///                    wrong JSON types, a record whose Key does not match its Config, an "ok" without a top-1, or a
///                    record whose predictions file is gone is skipped, counted and named, never a finished trial
///                    (so a rerun runs that trial again and appends a valid record); a failed trial ("error", or a
///                    "no-selection" final, or a final selected while tune trials had failed) is recorded but retried
///                    by the next run (<see cref="Retryable"/>), whose record then stands for the key;
///   claims/*.claim   a trial being run: created with O_EXCL (FileMode.CreateNew), holding host, pid and start time,
///                    kept fresh by a heartbeat; a claim whose process is gone (same host) is taken over at once, one
///                    of another host (or unreadable) once it has been silent for <see cref="StaleAfter"/> (unreadable:
///                    <see cref="UnreadableClaimGrace"/>); "silent" by its modification time or, when that lies in the
///                    future (another host's clock), by how long this process has watched it unchanged;
///   predictions/     logits and labels of scored trials (safetensors, written atomically).
/// So a rerun skips finished trials, a killed worker loses at most its running trial, and two workers never run
/// or record one trial twice. The lock is an flock (FileShare.None on store.lock): released by the kernel when a
/// process dies. On NFS-shared stores it relies on the NFS server's lock support, as slurm setups usually have.
/// A store works where it is: records name their predictions relative to the store, and a manifest's store is the
/// folder it lies in (<see cref="SweepManifest.Load"/>), so a copied or moved store resumes in place.
/// </summary>
public sealed partial class ResultsStore
{
    public string Dir { get; }
    public TimeSpan StaleAfter { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>How long a claim file with unreadable content (a claimer died between create and write) blocks its trial.</summary>
    public TimeSpan UnreadableClaimGrace { get; init; } = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan HeartbeatEvery = TimeSpan.FromSeconds(20);
    /// <summary>Where the store says that it waits on another host's claim, and when it takes a claim over
    /// (default: standard error; null: silent). Each waiting trial is reported once, then every minute.</summary>
    public Action<string>? Notices { get; init; } = m => Console.Error.WriteLine(m);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };
    static readonly TimeSpan NoticeEvery = TimeSpan.FromMinutes(1);

    string TrialsPath => Path.Combine(Dir, "trials.jsonl");
    string LockPath => Path.Combine(Dir, "store.lock");
    string ClaimsDir => Path.Combine(Dir, "claims");

    // Claims this process has watched: path -> (modification time seen, local time it was first seen with it).
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, (DateTime Mtime, DateTime Since)> watched = new();
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTime> noticed = new();

    public ResultsStore(string dir)
    {
        Dir = Path.GetFullPath(dir);
        Directory.CreateDirectory(Dir);
        Directory.CreateDirectory(ClaimsDir);
    }

    /// <summary>Every recorded trial, in the order they finished: per key the first valid record, or the one that
    /// replaced a failed one.</summary>
    public IReadOnlyList<TrialRecord> Records() => Read().Records;

    /// <summary>The valid records and the lines of trials.jsonl that were skipped, with why.</summary>
    public StoreContents Read()
    {
        if (!HasTrials()) return new StoreContents(Array.Empty<TrialRecord>(), Array.Empty<InvalidLine>());
        return Parse(ReadTrialsText());
    }

    /// <summary>Whether trials.jsonl exists; something else in its place (a folder) is an error, not an empty store.</summary>
    bool HasTrials()
    {
        if (Directory.Exists(TrialsPath)) throw new IOException($"Results store {Dir}: {TrialsPath} is a folder, not the trials file.");
        return File.Exists(TrialsPath);
    }

    string ReadTrialsText()
    {
        try
        {
            using var fs = new FileStream(TrialsPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            // Always UTF-8: bytes that look like another encoding's byte-order mark (FF FE) must not switch the reader.
            using var reader = new StreamReader(fs, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false);
            var text = reader.ReadToEnd();
            return text.StartsWith('\uFEFF') ? text[1..] : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Results store {Dir}: cannot read {TrialsPath} ({e.Message}).", e);
        }
    }

    StoreContents Parse(string text)
    {
        var seen = new Dictionary<string, (int Line, int Slot)>();
        var records = new List<TrialRecord?>(); // a replaced failure leaves a null slot (linear time however many reruns)
        var invalid = new List<InvalidLine>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0) continue;
            TrialRecord? r = null;
            string? problem;
            Interlocked.Add(ref charsParsed, line.Length);
            try { r = JsonSerializer.Deserialize<TrialRecord>(line, Json); problem = r is null ? "not a record (null)" : Problem(r); }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException or ArgumentException or FormatException)
            {
                problem = i == lines.Length - 1 ? "unfinished last line (a writer killed mid-write)" : $"not a trial record ({e.GetType().Name}: {Shorten(e.Message)})";
            }
            if (problem is null && seen.TryGetValue(r!.Key, out var first))
            {
                // A rerun's record of a failed trial replaces it; any other second record is a duplicate.
                if (Retryable(records[first.Slot]!)) records[first.Slot] = null;
                else problem = $"a second record of {r.Key} (line {first.Line} holds it)";
            }
            if (problem is not null) { invalid.Add(new InvalidLine(i + 1, problem)); continue; }
            seen[r!.Key] = (i + 1, records.Count);
            records.Add(r);
        }
        return new StoreContents(records.OfType<TrialRecord>().ToList(), invalid);
    }

    long charsParsed;
    /// <summary>Characters handed to the JSON reader by this instance so far: the work a read does, which tests bound by
    /// the file's size (each line parsed once per read) instead of timing it.</summary>
    internal long CharsParsed => Interlocked.Read(ref charsParsed);

    static string Shorten(string s) => s.Length > 120 ? s[..120] + "..." : s;

    static readonly HashSet<string> Statuses = new() { "ok", "diverged", "error", "no-selection" };

    static string FinalKeyOf(TrialConfig c) =>
        new TrialConfig { Task = c.Task, Method = c.Method, Phase = c.Phase, Profile = c.Profile, Protocol = c.Protocol, Seed = c.Seed, TrainImages = c.TrainImages }.Key;

    /// <summary>Why a parsed record cannot stand for a finished trial here, or null when it can.</summary>
    string? Problem(TrialRecord r)
    {
        if (string.IsNullOrEmpty(r.Key)) return "no Key";
        if (r.Config is null) return $"{r.Key}: no Config";
        var c = r.Config;
        foreach (var (name, value) in new[] { ("Task", c.Task), ("Method", c.Method), ("Phase", c.Phase), ("Profile", c.Profile), ("Protocol", c.Protocol) })
            if (string.IsNullOrEmpty(value)) return $"{r.Key}: Config has no {name}";
        if (c.Hp is null || c.Hp.Any(kv => kv.Key is null || kv.Value is null)) return $"{r.Key}: Config.Hp is missing or has nulls";
        // A final's key is known before selection (Protocol.FinalKey: the config without the selected values), so it may
        // match either form.
        if (c.Key != r.Key && !(c.Phase == "final" && FinalKeyOf(c) == r.Key)) return $"{r.Key}: Key does not match its Config (which gives {c.Key})";
        if (r.Status is null || !Statuses.Contains(r.Status)) return $"{r.Key}: unknown Status '{r.Status}'";
        bool Pct(double? v) => v is null || double.IsFinite(v.Value) && v.Value is >= 0 and <= 100;
        if (!Pct(r.Top1Last) || !Pct(r.Top1Best)) return $"{r.Key}: top-1 outside 0..100";
        if (r.Status == "ok" && r.Top1Last is null) return $"{r.Key}: status ok without Top1Last";
        if (r.Status is "error" or "no-selection" && string.IsNullOrEmpty(r.Error)) return $"{r.Key}: status {r.Status} without Error";
        if (r.Predictions is string rel)
        {
            if (rel.Length == 0 || Path.IsPathRooted(rel) || rel.Replace('\\', '/').Split('/').Contains(".."))
                return $"{r.Key}: Predictions '{rel}' is not a path inside the store";
            if (!File.Exists(Path.Combine(Dir, rel))) return $"{r.Key}: predictions file {rel} is missing";
        }
        return null;
    }

    public TrialRecord? Find(string key) => Records().FirstOrDefault(r => r.Key == key);
    public bool IsFinished(string key) => Find(key) is not null;

    /// <summary>A failed trial ("error", or a final with no successful tune trial to select), or a val refit or final
    /// selected while tune trials had failed (<see cref="TrialRecord.SelectedWithout"/>): recorded, but a rerun runs it
    /// again (a typo'd path or a lost GPU must not stand for the trial's result, nor decide a selection for good).</summary>
    public static bool Retryable(TrialRecord r) => r.Status is "error" or "no-selection" || r.SelectedWithout is { Length: > 0 };

    /// <summary>Why a rerun runs <paramref name="r"/> (a <see cref="Retryable"/> record) again, for its "retrying KEY: ..." line.</summary>
    public static string WhyRetried(TrialRecord r) => r.Status is "error" or "no-selection"
        ? $"its recorded run failed ({r.Status}: {r.Error})"
        : $"it was selected while {r.SelectedWithout!.Length} tune trial(s) had failed, which this run retries first";

    /// <summary>Whether <paramref name="current"/> is the failed record <paramref name="retrying"/> (so not yet replaced).</summary>
    public static bool IsSameFailure(TrialRecord? current, TrialRecord? retrying) =>
        current is not null && retrying is not null && Retryable(current) && current.Key == retrying.Key
        && current.FinishedUtc == retrying.FinishedUtc && current.Pid == retrying.Pid && current.Host == retrying.Host;

    /// <summary>Claims <paramref name="key"/> for this process, or returns null when it is finished or a live
    /// worker holds it (another host's claim is reported to <see cref="Notices"/>: who holds it, since when, and
    /// when it would be taken over). <paramref name="retrying"/>: the failed record this run means to replace (the key
    /// counts as unfinished while it is the key's record). Dispose the claim when done (after <see cref="Append"/>,
    /// or on failure to give it back).</summary>
    public TrialClaim? TryClaim(string key, TrialRecord? retrying = null)
    {
        using var _ = Lock();
        if (Find(key) is { } done && !IsSameFailure(done, retrying)) return null;
        var path = ClaimPath(key);
        if (File.Exists(path) || Directory.Exists(path))
        {
            var holder = Inspect(path);
            if (!holder.Stale) { Notice(path, holder, taken: false); return null; }
            if (holder.Reportable) Notice(path, holder, taken: true);
            try { File.Delete(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Results store {Dir}: cannot remove the stale claim {path} ({e.Message}).", e);
            }
            watched.TryRemove(path, out var _unused);
        }
        try
        {
            // FileShare.Read: on Unix .NET takes a shared flock then, which a reader holding the new file open (a progress
            // view lists claims without the store's lock) cannot refuse; FileShare.None's exclusive flock could fail in
            // that instant and leave an empty claim that every worker then waited out. CreateNew (O_EXCL) is what
            // makes the claim exclusive, and claimers hold the store's lock.
            using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
            var me = Process.GetCurrentProcess();
            var owner = new ClaimOwner(key, Environment.MachineName, me.Id, me.StartTime.ToUniversalTime().Ticks, DateTime.UtcNow);
            fs.Write(JsonSerializer.SerializeToUtf8Bytes(owner, Json));
            fs.Flush(true);
        }
        catch (IOException) when (File.Exists(path)) { return null; } // another host won the O_EXCL race
        return new TrialClaim(this, key, path);
    }

    /// <summary>Who holds the claim on <paramref name="key"/> and whether it is stale; null when unclaimed.</summary>
    public ClaimHolder? Holder(string key)
    {
        var path = ClaimPath(key);
        return File.Exists(path) || Directory.Exists(path) ? Inspect(path) : null;
    }

    void Notice(string path, ClaimHolder h, bool taken)
    {
        if (Notices is null || !h.Reportable) return;
        var now = DateTime.UtcNow;
        if (!taken && noticed.TryGetValue(path, out var last) && now - last < NoticeEvery) return;
        noticed[path] = now;
        Notices(taken ? $"taking over {h.Describe()}" : $"waiting: {h.Describe()}");
    }

    /// <summary>Appends a finished trial. Returns false (and writes nothing) when the key is already recorded, unless
    /// its record is <paramref name="retrying"/> (a failed one this record replaces).</summary>
    public bool Append(TrialRecord record, TrialRecord? retrying = null)
    {
        var line = JsonSerializer.Serialize(record, Json);
        if (line.Contains('\n')) throw new InvalidOperationException("a trial record serialised over several lines");
        using var _ = Lock();
        string existing = HasTrials() ? ReadTrialsText() : "";
        if (Parse(existing).Records.FirstOrDefault(r => r.Key == record.Key) is { } current && !IsSameFailure(current, retrying)) return false;
        using var fs = new FileStream(TrialsPath, FileMode.Append, FileAccess.Write, FileShare.Read);
        // A torn line left by a killed writer gets its own line ended, so it cannot swallow this one.
        var bytes = Encoding.UTF8.GetBytes((existing.Length > 0 && existing[^1] != '\n' ? "\n" : "") + line + "\n");
        fs.Write(bytes);
        fs.Flush(true);
        return true;
    }

    /// <summary>Writes test logits [N, K] and labels [N] for <paramref name="key"/>; returns the path relative to the store.</summary>
    public string SavePredictions(string key, EvalResult eval)
    {
        var rel = Path.Combine("predictions", FileNameOf(key) + ".safetensors");
        SafetensorsFile.Write(Path.Combine(Dir, rel), new Dictionary<string, Tensor> { ["logits"] = eval.Logits, ["labels"] = eval.Labels },
            new Dictionary<string, string> { ["key"] = key, ["top1"] = eval.Top1.ToString("R", System.Globalization.CultureInfo.InvariantCulture) });
        return rel;
    }

    /// <summary>Keys of unfinished trials with a claim (held by a live worker, or left by a dead one and not yet
    /// taken over): what a progress view shows as "running".</summary>
    public IReadOnlyList<string> Claimed()
    {
        var finished = Records().Select(r => r.Key).ToHashSet();
        return Directory.EnumerateFiles(ClaimsDir, "*.claim").Select(p => ReadOwner(p)?.Key).OfType<string>()
            .Where(k => !finished.Contains(k)).ToList();
    }

    /// <summary>Deletes claims of finished trials (a worker killed between recording a trial and releasing its
    /// claim leaves one behind) and stale claims. Returns how many went.</summary>
    public int PruneClaims()
    {
        using var _ = Lock();
        var finished = Records().Select(r => r.Key).ToHashSet();
        int removed = 0;
        foreach (var path in Directory.EnumerateFiles(ClaimsDir, "*.claim").ToList())
        {
            var owner = ReadOwner(path);
            if (owner is not null && finished.Contains(owner.Key) || IsStale(path)) { Release(path); removed++; }
        }
        return removed;
    }

    /// <summary>The finished trials as a table, one row per trial (nullable columns: NaN is not "missing" there).</summary>
    public DataFrame ToDataFrame() => ToDataFrame(Records());

    public static DataFrame ToDataFrame(IReadOnlyList<TrialRecord> records)
    {
        StringDataFrameColumn S(string name, Func<TrialRecord, string?> f) => new(name, records.Select(f));
        PrimitiveDataFrameColumn<double> D(string name, Func<TrialRecord, double?> f) => new(name, records.Select(f));
        PrimitiveDataFrameColumn<long> L(string name, Func<TrialRecord, long?> f) => new(name, records.Select(f));
        return new DataFrame(
            S("task", r => r.Config.Task), S("method", r => r.Config.Method), S("phase", r => r.Config.Phase),
            D("lr", r => r.Config.Lr), D("wd", r => r.Config.WeightDecay), D("drop_path", r => r.Config.DropPath),
            S("hp", r => r.Config.HpText), S("status", r => r.Status),
            D("top1_last", r => r.Top1Last), D("top1_best", r => r.Top1Best), L("best_epoch", r => r.BestEpoch),
            L("trainable_params", r => r.TrainableParams), D("wall_s", r => r.WallSeconds), D("images_per_s", r => r.ImagesPerSecond),
            L("epochs", r => r.Epochs), S("profile", r => r.Config.Profile), L("seed", r => r.Config.Seed), S("key", r => r.Key));
    }

    internal void Release(string path)
    {
        try { File.Delete(path); } catch (IOException) { }
    }

    string ClaimPath(string key) => Path.Combine(ClaimsDir, FileNameOf(key) + ".claim");

    /// <summary>A file name for a key: readable prefix plus a hash (keys contain '/' and '=').</summary>
    public static string FileNameOf(string key)
    {
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..12].ToLowerInvariant();
        var readable = new string(key.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_').ToArray());
        return (readable.Length > 80 ? readable[..80] : readable) + "-" + hash;
    }

    bool IsStale(string claimPath) => Inspect(claimPath).Stale;

    /// <summary>Reads a claim and decides whether it is stale (see the class summary).</summary>
    ClaimHolder Inspect(string claimPath)
    {
        var owner = ReadOwner(claimPath);
        var key = owner?.Key ?? Path.GetFileNameWithoutExtension(claimPath);
        if (owner is not null && owner.Host == Environment.MachineName)
        {
            bool alive = ProcessAlive(owner.Pid, owner.StartTicks);
            return new ClaimHolder(key, owner.Host, owner.Pid, owner.ClaimedUtc, TimeSpan.Zero, TimeSpan.Zero, !alive, Reportable: false);
        }
        // Another host, or unreadable (a claimer died between create and write, or is writing now): stale once silent
        // long enough.
        var limit = owner is null ? UnreadableClaimGrace : StaleAfter;
        var silent = Silence(claimPath);
        return new ClaimHolder(key, owner?.Host, owner?.Pid, owner?.ClaimedUtc, silent, limit, silent > limit, Reportable: true);
    }

    /// <summary>How long a claim file has not been touched: by its modification time, or (a time in the future, set
    /// by a host whose clock runs ahead, or forged) by how long this process has seen that same time.</summary>
    TimeSpan Silence(string claimPath)
    {
        DateTime mtime;
        try { mtime = File.Exists(claimPath) ? File.GetLastWriteTimeUtc(claimPath) : Directory.GetLastWriteTimeUtc(claimPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { mtime = DateTime.MinValue; }
        var now = DateTime.UtcNow;
        var seen = watched.AddOrUpdate(claimPath, _ => (mtime, now), (_, old) => old.Mtime == mtime ? old : (mtime, now));
        var byMtime = now - mtime;
        var watchedFor = now - seen.Since;
        return byMtime > watchedFor ? byMtime : watchedFor;
    }

    static bool ProcessAlive(int pid, long startTicks)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            if (p.HasExited) return false;
            // pid reuse: a different process with the same id started at another time.
            return Math.Abs((double)p.StartTime.ToUniversalTime().Ticks - startTicks) < TimeSpan.TicksPerSecond;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { return false; }
    }

    /// <summary>A claim's owner, or null when the file is unreadable, too large, or not a well-formed claim.</summary>
    static ClaimOwner? ReadOwner(string path)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var buffer = new byte[4096];
            int n = 0, got;
            while (n < buffer.Length && (got = fs.Read(buffer, n, buffer.Length - n)) > 0) n += got;
            if (n == buffer.Length) return null; // a real claim is ~200 bytes
            var owner = JsonSerializer.Deserialize<ClaimOwner>(buffer.AsSpan(0, n), Json);
            return owner is { Key.Length: > 0, Host.Length: > 0, Pid: > 0 } ? owner : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or NotSupportedException or ArgumentException) { return null; }
    }

    /// <summary>The store-wide exclusive lock; waits (polling) for other workers.</summary>
    FileStream Lock()
    {
        // A folder in the lock's place reads as "Access denied" from the open below: say what it is.
        if (Directory.Exists(LockPath)) throw new IOException($"Results store {Dir}: {LockPath} is a folder, not the store's lock file; remove it.");
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            try { return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(Random.Shared.Next(5, 25)); }
            catch (IOException e) { throw new IOException($"Results store {Dir}: could not lock {LockPath} within 2 minutes.", e); }
        }
    }

    internal sealed record ClaimOwner(string Key, string Host, int Pid, long StartTicks, DateTime ClaimedUtc);
}

/// <summary>What trials.jsonl holds: the valid records (one per key, in file order) and the skipped lines.</summary>
public sealed record StoreContents(IReadOnlyList<TrialRecord> Records, IReadOnlyList<InvalidLine> Invalid)
{
    /// <summary>"2 invalid lines in trials.jsonl skipped: line 3 (...); line 7 (...)", or null when none.</summary>
    public string? InvalidSummary(int show = 5) => Invalid.Count == 0 ? null :
        $"{Invalid.Count} invalid line(s) in trials.jsonl skipped (not counted as finished): " +
        string.Join("; ", Invalid.Take(show).Select(l => $"line {l.Line} ({l.Reason})")) + (Invalid.Count > show ? "; ..." : "");
}

/// <summary>A line of trials.jsonl that is not a valid finished trial, and why.</summary>
public sealed record InvalidLine(int Line, string Reason);

/// <summary>Who holds a claim (Host/Pid null when the claim file is unreadable), how long it has been silent, the
/// silence after which it is taken over, and whether it is stale now. Reportable: a claim that only goes stale by
/// time (another host's, or unreadable); a same-host claim goes stale when its process is gone.</summary>
public sealed record ClaimHolder(string Key, string? Host, int? Pid, DateTime? ClaimedUtc, TimeSpan Silent, TimeSpan StaleAfter, bool Stale, bool Reportable)
{
    public string Describe() =>
        (Host is null ? $"an unreadable claim on {Key}" : $"{Key}, claimed by {Host} pid {Pid}" +
            (ClaimedUtc is DateTime c ? $" since {c:yyyy-MM-dd HH:mm:ss}Z ({Ago(DateTime.UtcNow - c)} ago)" : "")) +
        $"; last heartbeat {Ago(Silent)} ago" +
        (Stale ? $", silent past {Ago(StaleAfter)}" : $"; taken over if silent for {Ago(StaleAfter - Silent)} more");

    static string Ago(TimeSpan t) => t < TimeSpan.Zero ? "0s" : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" :
        t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:0}s";
}

/// <summary>A held claim on one trial; a background heartbeat keeps it fresh for workers on other hosts.</summary>
public sealed class TrialClaim : IDisposable
{
    readonly ResultsStore store;
    readonly string path;
    readonly Timer heartbeat;
    public string Key { get; }

    internal TrialClaim(ResultsStore store, string key, string path)
    {
        this.store = store; this.path = path; Key = key;
        // A failed touch (store unreachable for a moment) must not end the process: timer callbacks have no catcher.
        heartbeat = new Timer(_ => { try { File.SetLastWriteTimeUtc(path, DateTime.UtcNow); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } },
            null, ResultsStore.HeartbeatEvery, ResultsStore.HeartbeatEvery);
    }

    public void Dispose()
    {
        heartbeat.Dispose();
        store.Release(path);
    }
}
