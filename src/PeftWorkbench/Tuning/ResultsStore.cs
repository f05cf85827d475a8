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
///                    a torn last line (a writer killed mid-write) is ignored when reading and never counted;
///   claims/*.claim   a trial being run: created with O_EXCL (FileMode.CreateNew), holding host, pid and start time,
///                    kept fresh by a heartbeat; a claim whose process is gone (same host) or whose heartbeat is
///                    older than <see cref="StaleAfter"/> (other host) is taken over;
///   predictions/     test logits and labels of final trials (safetensors, written atomically).
/// So a rerun skips finished trials, a killed worker loses at most its running trial, and two workers never run
/// or record one trial twice. The lock is an flock (FileShare.None on store.lock): released by the kernel when a
/// process dies. On NFS-shared stores it relies on the NFS server's lock support, as slurm setups usually have.
/// </summary>
public sealed class ResultsStore
{
    public string Dir { get; }
    public TimeSpan StaleAfter { get; init; } = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan HeartbeatEvery = TimeSpan.FromSeconds(20);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    string TrialsPath => Path.Combine(Dir, "trials.jsonl");
    string LockPath => Path.Combine(Dir, "store.lock");
    string ClaimsDir => Path.Combine(Dir, "claims");

    public ResultsStore(string dir)
    {
        Dir = Path.GetFullPath(dir);
        Directory.CreateDirectory(Dir);
        Directory.CreateDirectory(ClaimsDir);
    }

    /// <summary>Every finished trial, in the order they finished. Later duplicates (none by construction) are dropped.</summary>
    public IReadOnlyList<TrialRecord> Records()
    {
        if (!File.Exists(TrialsPath)) return Array.Empty<TrialRecord>();
        string text;
        using (var fs = new FileStream(TrialsPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        using (var reader = new StreamReader(fs, Encoding.UTF8)) text = reader.ReadToEnd();
        return Parse(text);
    }

    static List<TrialRecord> Parse(string text)
    {
        var seen = new HashSet<string>();
        var records = new List<TrialRecord>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            TrialRecord? r = null;
            try { r = JsonSerializer.Deserialize<TrialRecord>(line, Json); }
            catch (JsonException) { } // a torn line from a killed writer: not a finished trial
            if (r is not null && seen.Add(r.Key)) records.Add(r);
        }
        return records;
    }

    public TrialRecord? Find(string key) => Records().FirstOrDefault(r => r.Key == key);
    public bool IsFinished(string key) => Find(key) is not null;

    /// <summary>Claims <paramref name="key"/> for this process, or returns null when it is finished or a live
    /// worker holds it. Dispose the claim when done (after <see cref="Append"/>, or on failure to give it back).</summary>
    public TrialClaim? TryClaim(string key)
    {
        using var _ = Lock();
        if (IsFinished(key)) return null;
        var path = ClaimPath(key);
        if (File.Exists(path))
        {
            if (!IsStale(path)) return null;
            File.Delete(path);
        }
        try
        {
            using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            var me = Process.GetCurrentProcess();
            var owner = new ClaimOwner(key, Environment.MachineName, me.Id, me.StartTime.ToUniversalTime().Ticks, DateTime.UtcNow);
            fs.Write(JsonSerializer.SerializeToUtf8Bytes(owner, Json));
            fs.Flush(true);
        }
        catch (IOException) when (File.Exists(path)) { return null; } // another host won the O_EXCL race
        return new TrialClaim(this, key, path);
    }

    /// <summary>Appends a finished trial. Returns false (and writes nothing) when the key is already recorded.</summary>
    public bool Append(TrialRecord record)
    {
        var line = JsonSerializer.Serialize(record, Json);
        if (line.Contains('\n')) throw new InvalidOperationException("a trial record serialised over several lines");
        using var _ = Lock();
        string existing = File.Exists(TrialsPath) ? File.ReadAllText(TrialsPath) : "";
        if (Parse(existing).Any(r => r.Key == record.Key)) return false;
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

    bool IsStale(string claimPath)
    {
        var owner = ReadOwner(claimPath);
        // Unreadable: a claimer died between create and write (or is writing now); stale once old enough.
        if (owner is null) return DateTime.UtcNow - File.GetLastWriteTimeUtc(claimPath) > TimeSpan.FromSeconds(30);
        if (owner.Host == Environment.MachineName) return !ProcessAlive(owner.Pid, owner.StartTicks);
        return DateTime.UtcNow - File.GetLastWriteTimeUtc(claimPath) > StaleAfter;
    }

    static bool ProcessAlive(int pid, long startTicks)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            if (p.HasExited) return false;
            // pid reuse: a different process with the same id started at another time.
            return Math.Abs(p.StartTime.ToUniversalTime().Ticks - startTicks) < TimeSpan.TicksPerSecond;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    static ClaimOwner? ReadOwner(string path)
    {
        try { return JsonSerializer.Deserialize<ClaimOwner>(File.ReadAllBytes(path), Json); }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>The store-wide exclusive lock; waits (polling) for other workers.</summary>
    FileStream Lock()
    {
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
        heartbeat = new Timer(_ => { try { File.SetLastWriteTimeUtc(path, DateTime.UtcNow); } catch (IOException) { } },
            null, ResultsStore.HeartbeatEvery, ResultsStore.HeartbeatEvery);
    }

    public void Dispose()
    {
        heartbeat.Dispose();
        store.Release(path);
    }
}
