using System.Text.Json;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Peft;

/// <summary>
/// The 16 methods of the study, by the study's ids (as in its vtab1k_results.csv), with a few readable
/// aliases; builds options from the study's hyperparameter keys (lora_bottleneck=8, ...).
/// </summary>
public static class MethodRegistry
{
    /// <summary>The methods this library ships, in the order the study's tables list them. Adding a method is its
    /// file plus one entry here.</summary>
    public static IReadOnlyList<PeftMethod> BuiltIn { get; } = new[]
    {
        LinearProbeOptions.Info, FullFineTuneOptions.Info, BitFitOptions.Info, LayerNormOptions.Info, DiffFitOptions.Info,
        VptShallowOptions.Info, VptDeepOptions.Info, HoulsbyOptions.Info, PfeifferOptions.Info, AdaptFormerOptions.Info,
        ConvPassOptions.Info, RepAdapterOptions.Info, SsfOptions.Info, LoraOptions.Info, FactTtOptions.Info, FactTkOptions.Info,
    };

    static PeftMethod[] all = BuiltIn.ToArray();
    static readonly object registering = new();

    /// <summary>Every method: the built-in ones, then those added with <see cref="Register"/>.</summary>
    public static IReadOnlyList<PeftMethod> All => all;

    /// <summary>
    /// Adds a method defined outside this file (e.g. a test's toy method): it then attaches, saves, loads and
    /// appears in <see cref="All"/> like a built-in one. Its id must be new (not an id or alias already known)
    /// and its options type must describe this very method.
    /// </summary>
    public static void Register(PeftMethod method)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (string.IsNullOrWhiteSpace(method.Id)) throw new ArgumentException("a method needs a non-empty id");
        if (!typeof(PeftOptions).IsAssignableFrom(method.OptionsType) || method.OptionsType.GetConstructor(Type.EmptyTypes) is null)
            throw new ArgumentException($"method '{method.Id}': {method.OptionsType.Name} must be a PeftOptions record with a parameterless constructor");
        if (method.Defaults().Describe() != method)
            throw new ArgumentException($"method '{method.Id}': {method.OptionsType.Name}.Describe() returns another method");
        lock (registering)
        {
            if (all.Any(m => string.Equals(m.Id, method.Id, StringComparison.OrdinalIgnoreCase)) || Aliases.ContainsKey(method.Id))
                throw new ArgumentException($"method id '{method.Id}' is already taken");
            all = all.Append(method).ToArray();
        }
    }

    /// <summary>Readable names accepted besides the study's ids.</summary>
    public static IReadOnlyDictionary<string, string> Aliases { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["linear_probe"] = "linear", ["full_ft"] = "full", ["layernorm"] = "ln", ["houlsby"] = "rand_h_adapter",
        ["pfeiffer"] = "lora_p_adapter", ["vpt-shallow"] = "vpt_shallow", ["vpt-deep"] = "vpt_deep",
        ["fact-tt"] = "fact_tt", ["fact-tk"] = "fact_tk",
    };

    /// <summary>
    /// Keys of the study's result files that belong to training, not to a method (lr, wd): accepted wherever a method
    /// is chosen, so a row's selected_hyperparameters can be passed as is. A method's options leave them out; a run
    /// (Study.Run, `peft train --hp`) takes them as its learning rate and weight decay.
    /// </summary>
    public static IReadOnlySet<string> TrainingKeys { get; } = new HashSet<string> { "lr", "wd" };

    public static PeftMethod Get(string idOrAlias)
    {
        var id = Aliases.TryGetValue(idOrAlias, out var a) ? a : idOrAlias;
        return All.FirstOrDefault(m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"Unknown PEFT method '{idOrAlias}'. Known: {string.Join(", ", All.Select(m => m.Id))} (aliases: {string.Join(", ", Aliases.Keys)}).");
    }

    public static PeftMethod Of(PeftOptions options) => options.Describe();

    /// <summary>
    /// Options for <paramref name="method"/> from key=value pairs (the study's keys, or property names).
    /// Unknown keys are refused with the list of allowed ones; the values are validated against
    /// <paramref name="vit"/> when given.
    /// </summary>
    public static PeftOptions Create(string method, IReadOnlyDictionary<string, string>? hyperparameters = null, VitConfig? vit = null)
    {
        var info = Get(method);
        var options = info.Defaults();
        foreach (var (key, value) in hyperparameters ?? new Dictionary<string, string>())
        {
            if (TrainingKeys.Contains(key)) continue;
            var spec = info.FindOption(key) ?? throw new ArgumentException(
                $"Unknown hyperparameter '{key}' for method '{info.Id}'. Allowed: {(info.Options.Count == 0 ? "none (the method has no options)" : string.Join(", ", info.Options.Select(o => o.Key)))}; training keys {string.Join(", ", TrainingKeys)} are not method options (a run takes them as its learning rate and weight decay).");
            OptionValues.Set(options, spec, value);
        }
        if (vit is not null) options.Validate(vit);
        return options;
    }

    /// <summary>Key=value strings from a JSON object such as the study's selected_hyperparameters column.</summary>
    public static Dictionary<string, string> ParseJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ArgumentException($"expected a JSON object of hyperparameters, got {doc.RootElement.ValueKind}");
        var result = new Dictionary<string, string>();
        foreach (var p in doc.RootElement.EnumerateObject())
            result[p.Name] = p.Value.ValueKind switch
            {
                JsonValueKind.String => p.Value.GetString()!,
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                JsonValueKind.Null => "null",
                JsonValueKind.Number => p.Value.GetRawText(),
                _ => throw new ArgumentException($"hyperparameter '{p.Name}': unsupported JSON value {p.Value.GetRawText()}"),
            };
        return result;
    }

    /// <summary>Parses "key=value" strings (the CLI's --hp, the one key=value parser): key and value trimmed; an empty
    /// key or value, or a key given twice, is refused naming the pair.</summary>
    public static Dictionary<string, string> ParsePairs(IEnumerable<string> pairs)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            string key = eq < 0 ? "" : pair[..eq].Trim(), value = eq < 0 ? "" : pair[(eq + 1)..].Trim();
            if (key.Length == 0 || value.Length == 0) throw new ArgumentException($"Hyperparameter '{pair}' is not of the form key=value.");
            if (!result.TryAdd(key, value)) throw new ArgumentException($"Hyperparameter '{key}' is given twice ({key}={result[key]} and {pair.Trim()}).");
        }
        return result;
    }
}
