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
    /// The playground's grid for a method under a profile (its table's PlaygroundLrs and PlaygroundMethodValues): the lrs
    /// times the study's values of the method's first key (a method without keys: the study's wd {1e-4, 1e-3} instead).
    /// A profile that tunes the study's grid (paper): the study's whole grid, lr and wd included.
    /// </summary>
    public static Dictionary<string, string[]> Default(string method, string profile)
    {
        var info = Peft.MethodRegistry.Get(method);
        var p = Profiles.Get(profile);
        static string[] S(IEnumerable<object> values) => values.Select(Peft.OptionValues.Format).ToArray();
        if (p.MethodGrid == MethodGridPolicy.StudyGrid)
            return info.Grid.ToDictionary(kv => kv.Key, kv => S(kv.Value)).Concat(new Dictionary<string, string[]>
                { ["lr"] = new[] { "0.001", "0.01" }, ["wd"] = new[] { "0.0001", "0.001" } }).ToDictionary(kv => kv.Key, kv => kv.Value);
        var grid = new Dictionary<string, string[]> { ["lr"] = p.PlaygroundLrs.Select(x => x.ToString("R", CultureInfo.InvariantCulture)).ToArray() };
        if (info.Grid.OrderBy(kv => kv.Key, StringComparer.Ordinal).FirstOrDefault() is { Key: not null } first)
            grid[first.Key] = S(p.PlaygroundMethodValues is int k ? first.Value.Take(k) : first.Value);
        else grid["wd"] = new[] { "0.0001", "0.001" };
        return grid;
    }

    /// <summary>"lora_bottleneck {1, 8} x lr {0.001, 0.01}: 4 tune trials": each key's distinct values (1, " 1", 1.0 and
    /// 01 are one value, as <see cref="Split"/> counts them) and their product, exact however large.</summary>
    public static string Describe(IReadOnlyDictionary<string, string[]> grid)
    {
        var axes = grid.OrderBy(kv => kv.Key is "lr" or "wd" ? 1 : 0).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (kv.Key, Values: (kv.Value ?? Array.Empty<string>()).Select(Canonical).Distinct().ToList())).ToList();
        var trials = axes.Aggregate(System.Numerics.BigInteger.One, (n, a) => n * a.Values.Count);
        return string.Join(" x ", axes.Select(a => $"{a.Key} {{{string.Join(", ", a.Values)}}}")) + $": {trials} tune trials";
    }

    /// <summary>A value as the grid counts it: a number in its shortest round-trip form, anything else trimmed.</summary>
    static string Canonical(string? v) =>
        v is null ? "null" : double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x)
            ? x.ToString("R", CultureInfo.InvariantCulture) : v.Trim();

    /// <summary>The method grid in key order, and the lr and wd values (null where the grid leaves them to the profile).
    /// Refuses an empty key, a key without values, and an lr or wd that is not a positive number (wd may be 0), naming
    /// it; the method's keys and values are checked by <see cref="Protocol.ValidateGrid"/>.</summary>
    public static (IReadOnlyList<SortedDictionary<string, string>> Method, IReadOnlyList<double>? Lrs, IReadOnlyList<double>? WeightDecays)
        Split(string method, IReadOnlyDictionary<string, string[]> grid)
    {
        var info = Peft.MethodRegistry.Get(method);
        foreach (var (key, values) in grid)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("grid: a key is empty.");
            if (values is null || values.Length == 0) throw new ArgumentException($"grid: '{key}' has no values.");
            if (values.Any(v => string.IsNullOrWhiteSpace(v))) throw new ArgumentException($"grid: '{key}' has an empty or null value.");
        }
        // Two spellings of one option (its study key and its property name) would make one axis twice.
        var twice = grid.Keys.Where(k => k is not ("lr" or "wd")).GroupBy(k => info.FindOption(k)?.Key ?? k).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new ArgumentException($"grid: {string.Join(" and ", twice)} name one option of '{info.Id}'.");
        IReadOnlyList<double>? Numbers(string key, bool zeroAllowed) => grid.TryGetValue(key, out var values)
            ? values.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && (x > 0 || (zeroAllowed && x == 0))
                ? x : throw new ArgumentException($"grid: {key} value '{v}' is not a {(zeroAllowed ? "non-negative" : "positive")} number.")).Distinct().ToList()
            : null;
        var lrs = Numbers("lr", zeroAllowed: false);
        var wds = Numbers("wd", zeroAllowed: true);
        IEnumerable<SortedDictionary<string, string>> points = new[] { new SortedDictionary<string, string>(StringComparer.Ordinal) };
        // Each method value in the form its option parses to (8, " 8", 8.0 and 08 are one trial, keyed "8"); an unknown
        // key is left for ValidateGrid to name.
        var axes = grid.Where(kv => kv.Key is not ("lr" or "wd")).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            var spec = info.FindOption(kv.Key);
            return (Key: spec?.Key ?? kv.Key, Values: kv.Value.Select(v => spec is null ? v.Trim() : ParsedForm(info, spec, v)).Distinct().ToList());
        }).ToList();
        var count = axes.Aggregate(System.Numerics.BigInteger.One, (n, a) => n * a.Values.Count) * (lrs?.Count ?? 1) * (wds?.Count ?? 1);
        if (count > MaxTrials) throw new ArgumentException($"grid: {count} tune trials ({Describe(grid)}); at most {MaxTrials:N0} are tuned in one run.");
        foreach (var (key, values) in axes)
            points = points.SelectMany(p => values.Select(v => new SortedDictionary<string, string>(p, StringComparer.Ordinal) { [key] = v }));
        var methodGrid = points.ToList();
        Protocol.ValidateGrid(method, methodGrid);
        return (methodGrid, lrs, wds);
    }

    /// <summary>The most tune trials <see cref="Split"/> plans (a grid of millions is refused before it is built, not run).</summary>
    public const int MaxTrials = 100_000;

    static string ParsedForm(Peft.PeftMethod info, Peft.OptionSpec spec, string value)
    {
        var options = info.Defaults();
        Peft.OptionValues.Set(options, spec, value.Trim());
        return Peft.OptionValues.Format(Peft.OptionValues.Get(options, spec));
    }
}
