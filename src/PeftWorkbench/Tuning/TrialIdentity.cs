using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using PeftWorkbench.Data;
using PeftWorkbench.Vit;
using DataSuite = PeftWorkbench.Data.Suite;

namespace PeftWorkbench.Tuning;

/// <summary>
/// What decides a trial's numbers that its key does not name. The key names task, method, phase, profile, protocol,
/// seed, lr, wd, drop path and method options; budgets.json keeps the profile's budget
/// (<see cref="ResultsStore.CheckBudget"/>); this is the rest: the data (suite and its version), the backbone (its
/// shape, its checkpoint and the checkpoint's SHA-256) and the precision. A store keeps it per profile, protocol and
/// task (<see cref="ResultsStore.CheckIdentity"/>) and refuses to read back trials made under another one, so
/// `--checkpoint none` on a store trained from the shipped checkpoint is an error, not the old numbers.
/// Computing it checks the inputs: an unknown task or a checkpoint path that is not there fails here, before anything
/// is recorded. A checkpoint is compared by digest, not by path: a moved copy of the same file is the same backbone.
/// </summary>
public sealed record TrialIdentity
{
    /// <summary>mini, toy, vtab (a folder of VTAB-1K lists), or a suite a test environment adds.</summary>
    public required string Suite { get; init; }
    /// <summary>Which version of the task's data: the mini suite's cache version, or a digest of a VTAB-1K task's split lists.</summary>
    public required string Data { get; init; }
    /// <summary>"shipped:NAME", "file" or "none" (random init).</summary>
    public required string Checkpoint { get; init; }
    /// <summary>16 hex digits of the checkpoint's SHA-256 (null without one).</summary>
    public string? CheckpointSha256 { get; init; }
    public required string Backbone { get; init; }
    /// <summary>"float32" or "bf16".</summary>
    public required string Precision { get; init; }

    /// <summary>The compared fields, by name, in the order an error names them.</summary>
    public IReadOnlyList<(string Name, string Value)> Fields => new[]
    {
        ("suite", Suite), ("data", Data), ("checkpoint", Checkpoint), ("checkpoint sha256", CheckpointSha256 ?? "-"),
        ("backbone", Backbone), ("precision", Precision),
    };

    /// <summary>The store's scope of an identity (and of a budget): one profile, protocol and task, and the training-set
    /// size where it is not the whole train800 ("default/vtab1k/mnist/n=200"; without a size the scope reads as before).</summary>
    public static string Scope(ProtocolOptions options, string task) =>
        $"{options.Profile}/{options.Protocol}/{task}" + (options.TrainImages is int n ? FormattableString.Invariant($"/n={n}") : "");

    /// <summary>The identity of <paramref name="manifest"/>'s trials on <paramref name="task"/>; throws (naming the task
    /// or file) when the task is not in the suite or the checkpoint cannot be read.</summary>
    public static TrialIdentity Of(RunSetup manifest, string task)
    {
        if (string.IsNullOrWhiteSpace(task)) throw new ArgumentException("A task name is empty.", nameof(task));
        var (suite, data) = DataOf(manifest, task);
        if (TrainSubset.Normalize(manifest.TrainImages) is int n && TrainSubset.SplitCount(manifest.Suite, task) is int count)
            TrainSubset.Check(task, n, count); // a size beyond the split fails here, before the store is touched
        var (checkpoint, sha) = manifest.Checkpoint switch
        {
            null => ("none", (string?)null),
            string s when s.StartsWith("shipped:", StringComparison.Ordinal) => (s, ShippedDigest(s["shipped:".Length..])),
            string path => ("file", FileDigest(path)),
        };
        var b = manifest.Backbone;
        var backbone = string.Create(CultureInfo.InvariantCulture,
            $"{b.ImageSize}px patch {b.PatchSize} chans {b.InChans} dim {b.EmbedDim} depth {b.Depth} heads {b.NumHeads} mlp {b.MlpRatio} " +
            $"qkv-bias {b.QkvBias} patch-bias {b.PatchBias} pre-norm {b.PreNorm} {b.Activation} eps {b.LayerNormEps} drop {b.DropRate}");
        return new TrialIdentity
        {
            Suite = suite, Data = data, Checkpoint = checkpoint, CheckpointSha256 = sha, Backbone = backbone,
            Precision = manifest.Bf16 ? "bf16" : "float32",
        };
    }

    static (string Suite, string Data) DataOf(RunSetup manifest, string task)
    {
        switch (manifest.Suite)
        {
            case "mini":
                DataSuite.Mini.Info(task); // an unknown task fails here, naming the suite's tasks
                return ("mini", $"mini suite {MiniSuite.CacheVersion}");
            case "toy":
                return ("toy", $"toy {ToySuite.Classes(task)} classes");
            case string s when s.StartsWith("vtab:", StringComparison.Ordinal):
                var folder = Path.GetFullPath(Path.Combine(s[5..], task));
                if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"VTAB-1K task folder not found: {folder} (suite {s}, task '{task}').");
                var lists = DataSuite.SplitNames.Append(DataSuite.ManyShotSplit).Select(n => Path.Combine(folder, n + ".txt")).Where(File.Exists).ToList();
                if (lists.Count == 0) throw new FileNotFoundException($"{folder}: no split lists ({string.Join(", ", DataSuite.SplitNames.Select(n => n + ".txt"))}).");
                using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
                {
                    foreach (var list in lists)
                    {
                        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(list) + "\n"));
                        sha.AppendData(File.ReadAllBytes(list));
                    }
                    return ("vtab", "split lists sha256 " + Convert.ToHexStringLower(sha.GetHashAndReset())[..16]);
                }
            default:
                return (manifest.Suite, manifest.Suite);
        }
    }

    // Digests already taken in this process, by path, length and modification time (a ViT-B/16 file is 350 MB).
    static readonly ConcurrentDictionary<(string, long, DateTime), string> digests = new();

    static string FileDigest(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new ArgumentException($"Checkpoint {full} is a folder, not a checkpoint file.");
        if (!File.Exists(full)) throw new FileNotFoundException($"Checkpoint not found: {full} (--checkpoint: a safetensors/.pth/.npz file, shipped:mini, or none).", full);
        var info = new FileInfo(full);
        return digests.GetOrAdd((full, info.Length, info.LastWriteTimeUtc), _ =>
        {
            try
            {
                using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                return Convert.ToHexStringLower(SHA256.HashData(fs))[..16];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Checkpoint {full} cannot be read ({e.Message}).", e);
            }
        });
    }

    static string ShippedDigest(string name)
    {
        VisionTransformer.RequireShipped(name);
        return digests.GetOrAdd(("shipped:" + name, 0, default), _ =>
        {
            using var s = VisionTransformer.OpenPretrained(name);
            return Convert.ToHexStringLower(SHA256.HashData(s))[..16];
        });
    }
}
