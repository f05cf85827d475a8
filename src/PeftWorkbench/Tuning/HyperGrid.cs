using System.Globalization;

namespace PeftWorkbench.Tuning;

/// <summary>
/// A grid written as the study writes one (its tuning-grid rows: {'lora_bottleneck': 8, 'lr': 0.001, 'wd': 0.0001}):
/// each key's values, the method's keys beside "lr" and "wd". <see cref="Split"/> turns it into what the protocol
/// tunes: the method grid (the cartesian product of the method's keys) and the lr and wd grids.
/// </summary>
public static class HyperGrid
{
    /// <summary>
    /// The playground's grid for a method under a profile: lr {1e-3, 3e-3, 1e-2, 3e-2} (the study's two and a step beyond
    /// each) times the study's values of the method's first key (a method without keys: the study's wd {1e-4, 1e-3}
    /// instead). smoke: lr {1e-3, 1e-2} and the first two values. paper: the study's whole grid, lr and wd included.
    /// </summary>
    public static Dictionary<string, string[]> Default(string method, string profile)
    {
        var info = Peft.MethodRegistry.Get(method);
        var p = Profiles.Get(profile);
        static string[] S(IEnumerable<object> values) => values.Select(Peft.OptionValues.Format).ToArray();
        if (p.MethodGrid == MethodGridPolicy.StudyGrid)
            return info.Grid.ToDictionary(kv => kv.Key, kv => S(kv.Value)).Concat(new Dictionary<string, string[]>
                { ["lr"] = new[] { "0.001", "0.01" }, ["wd"] = new[] { "0.0001", "0.001" } }).ToDictionary(kv => kv.Key, kv => kv.Value);
        bool smoke = p.Name == "smoke";
        var grid = new Dictionary<string, string[]> { ["lr"] = smoke ? new[] { "0.001", "0.01" } : new[] { "0.001", "0.003", "0.01", "0.03" } };
        if (info.Grid.OrderBy(kv => kv.Key, StringComparer.Ordinal).FirstOrDefault() is { Key: not null } first)
            grid[first.Key] = S(smoke ? first.Value.Take(2) : first.Value);
        else grid["wd"] = new[] { "0.0001", "0.001" };
        return grid;
    }

    /// <summary>"lora_bottleneck {1, 8} x lr {0.001, 0.01}: 4 trials".</summary>
    public static string Describe(IReadOnlyDictionary<string, string[]> grid) =>
        string.Join(" x ", grid.OrderBy(kv => kv.Key is "lr" or "wd" ? 1 : 0).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {{{string.Join(", ", kv.Value)}}}")) +
        $": {grid.Values.Aggregate(1, (n, v) => n * v.Distinct().Count())} tune trials";

    /// <summary>The method grid in key order, and the lr and wd values (null where the grid leaves them to the profile).
    /// Refuses an empty key, a key without values, and an lr or wd that is not a positive number (wd may be 0), naming
    /// it; the method's keys and values are checked by <see cref="Protocol.ValidateGrid"/>.</summary>
    public static (IReadOnlyList<SortedDictionary<string, string>> Method, IReadOnlyList<double>? Lrs, IReadOnlyList<double>? WeightDecays)
        Split(string method, IReadOnlyDictionary<string, string[]> grid)
    {
        foreach (var (key, values) in grid)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("grid: a key is empty.");
            if (values is null || values.Length == 0) throw new ArgumentException($"grid: '{key}' has no values.");
        }
        IReadOnlyList<double>? Numbers(string key, bool zeroAllowed) => grid.TryGetValue(key, out var values)
            ? values.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && (x > 0 || (zeroAllowed && x == 0))
                ? x : throw new ArgumentException($"grid: {key} value '{v}' is not a {(zeroAllowed ? "non-negative" : "positive")} number.")).Distinct().ToList()
            : null;
        var lrs = Numbers("lr", zeroAllowed: false);
        var wds = Numbers("wd", zeroAllowed: true);
        IEnumerable<SortedDictionary<string, string>> points = new[] { new SortedDictionary<string, string>(StringComparer.Ordinal) };
        foreach (var (key, values) in grid.Where(kv => kv.Key is not ("lr" or "wd")).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            points = points.SelectMany(p => values.Distinct().Select(v => new SortedDictionary<string, string>(p, StringComparer.Ordinal) { [key] = v.Trim() }));
        var methodGrid = points.ToList();
        Protocol.ValidateGrid(method, methodGrid);
        return (methodGrid, lrs, wds);
    }
}
