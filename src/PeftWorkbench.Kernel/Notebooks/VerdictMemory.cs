using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Checkpoints;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>A verdict line a notebook printed, and when (UTC) the run that printed it ended.</summary>
public sealed record RecordedVerdict(string Verdict, DateTime When);

/// <summary>
/// The verdicts of every report run into one folder, per profile and backbone (OUT/verdicts.json), so that the index
/// shows the findings on one backbone beside another's (issue 25: "the old backbone's verdicts kept in the index for
/// comparison"). A run records what its `verdict` cells printed; a notebook that failed or printed nothing leaves the
/// verdict recorded before. Only the same profile is compared: a smoke verdict says nothing beside a default one.
/// </summary>
public sealed class VerdictMemory
{
    public const string FileName = "verdicts.json";

    /// <summary>profile -> backbone -> notebook (file name without extension) -> verdict.</summary>
    readonly SortedDictionary<string, SortedDictionary<string, SortedDictionary<string, RecordedVerdict>>> byProfile = new(StringComparer.Ordinal);

    public static string PathIn(string outDir) => Path.Combine(outDir, FileName);

    /// <summary>The folder's memory; none yet: empty. A file that does not parse is reported through
    /// <paramref name="warn"/> (naming it) and set aside as FILE.unreadable, never silently overwritten.</summary>
    public static VerdictMemory Load(string outDir, Action<string>? warn = null)
    {
        var memory = new VerdictMemory();
        var path = PathIn(outDir);
        if (!File.Exists(path)) return memory;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not a JSON object");
            foreach (var (profile, backbones) in root)
                foreach (var (backbone, notebooks) in backbones as JsonObject ?? throw new JsonException($"'{profile}' is not an object"))
                    foreach (var (notebook, v) in notebooks as JsonObject ?? throw new JsonException($"'{profile}.{backbone}' is not an object"))
                    {
                        var verdict = (string?)v?["verdict"] ?? throw new JsonException($"'{profile}.{backbone}.{notebook}' has no verdict");
                        var when = DateTime.Parse((string?)v["when"] ?? throw new JsonException($"'{profile}.{backbone}.{notebook}' has no time"),
                            CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
                        memory.Set(profile, backbone, notebook, new RecordedVerdict(verdict, when));
                    }
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            var aside = path + ".unreadable";
            File.Move(path, aside, overwrite: true);
            warn?.Invoke($"{path}: not a verdict record ({e.Message}); moved to {aside}, and the index starts a new one");
            return new VerdictMemory();
        }
        return memory;
    }

    public void Set(string profile, string backbone, string notebook, RecordedVerdict verdict)
    {
        if (!byProfile.TryGetValue(profile, out var backbones)) byProfile[profile] = backbones = new(StringComparer.Ordinal);
        if (!backbones.TryGetValue(backbone, out var notebooks)) backbones[backbone] = notebooks = new(StringComparer.Ordinal);
        notebooks[notebook] = verdict;
    }

    public RecordedVerdict? Get(string profile, string backbone, string notebook) =>
        byProfile.TryGetValue(profile, out var b) && b.TryGetValue(backbone, out var n) && n.TryGetValue(notebook, out var v) ? v : null;

    /// <summary>The backbones with a verdict under <paramref name="profile"/> for any of <paramref name="notebooks"/>, but <paramref name="except"/>.</summary>
    public IReadOnlyList<string> OtherBackbones(string profile, string except, IEnumerable<string> notebooks)
    {
        var names = notebooks.ToHashSet(StringComparer.Ordinal);
        return byProfile.TryGetValue(profile, out var b)
            ? b.Where(kv => kv.Key != except && kv.Value.Keys.Any(names.Contains)).Select(kv => kv.Key).ToList()
            : Array.Empty<string>();
    }

    /// <summary>Writes the memory whole (replace-by-rename: a reader sees the old file or the new one), readable: quotes and
    /// non-ASCII letters as they are.</summary>
    public void Save(string outDir)
    {
        var root = new JsonObject();
        foreach (var (profile, backbones) in byProfile)
        {
            var b = new JsonObject();
            foreach (var (backbone, notebooks) in backbones)
            {
                var n = new JsonObject();
                foreach (var (notebook, v) in notebooks)
                    n[notebook] = new JsonObject { ["verdict"] = v.Verdict, ["when"] = v.When.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture) };
                b[backbone] = n;
            }
            root[profile] = b;
        }
        AtomicFile.WriteText(PathIn(outDir), root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }
}
