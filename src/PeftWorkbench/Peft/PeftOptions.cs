using System.Globalization;
using System.Reflection;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Peft;

/// <summary>
/// One option of a method: its key (the study's hyperparameter name where the study has one, e.g.
/// "lora_bottleneck"), the options-record property it sets, what it means, and the values the study
/// searched (its grid; null when the study kept the option fixed).
/// </summary>
public sealed record OptionSpec(string Key, string Property, string Description, IReadOnlyList<object>? Grid = null);

/// <summary>
/// What a method is, as data: the study's id, a readable name, where it sits in a ViT block, how it is
/// initialised, its options (with the study's grid), whether it can be merged into the backbone, and
/// whether it leaves the output unchanged when attached (zero-initialised).
/// </summary>
public sealed record PeftMethod(
    string Id,
    string Name,
    Type OptionsType,
    string Where,
    string Init,
    IReadOnlyList<OptionSpec> Options,
    bool Mergeable,
    bool IdentityAtInit,
    string StrengthRule = "scales the method's delta",
    bool StrengthOnOutput = false)
{
    /// <summary>The options record with the study's defaults.</summary>
    public PeftOptions Defaults() => (PeftOptions)Activator.CreateInstance(OptionsType)!;

    /// <summary>The study's grid for this method, key by key (empty when the method has no hyperparameters).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<object>> Grid =>
        Options.Where(o => o.Grid is not null).ToDictionary(o => o.Key, o => o.Grid!);

    /// <summary>Every point of the study's grid (the cartesian product), as key=value strings Peft.Attach accepts.</summary>
    public IEnumerable<IReadOnlyDictionary<string, string>> GridPoints()
    {
        IEnumerable<Dictionary<string, string>> points = new[] { new Dictionary<string, string>() };
        foreach (var (key, values) in Grid)
            points = points.SelectMany(p => values.Select(v => new Dictionary<string, string>(p) { [key] = OptionValues.Format(v) }));
        return points;
    }

    public OptionSpec? FindOption(string keyOrProperty) =>
        Options.FirstOrDefault(o => o.Key == keyOrProperty)
        ?? Options.FirstOrDefault(o => string.Equals(o.Property, keyOrProperty, StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// Base of every method's options record. Defaults are the study's; <see cref="Validate"/> checks the
/// values against a ViT shape and names the option and its allowed range when one is out of bounds.
/// </summary>
public abstract record PeftOptions
{
    /// <summary>The method these options configure.</summary>
    public abstract PeftMethod Describe();

    /// <summary>Throws ArgumentException naming the option, its key and the allowed range when a value does not fit <paramref name="vit"/>.</summary>
    public virtual void Validate(VitConfig vit) { }

    /// <summary>Wraps the ViT's slots and marks what trains (called by Peft.Attach after Validate).</summary>
    internal abstract void Attach(AttachContext ctx);

    /// <summary>Option values by key (the study's names), as adapter_config.json stores them.</summary>
    public IReadOnlyDictionary<string, object?> ToHyperparameters() =>
        Describe().Options.ToDictionary(o => o.Key, o => OptionValues.Get(this, o));

    public sealed override string ToString() =>
        Describe().Id + "(" + string.Join(", ", ToHyperparameters().Select(kv => $"{kv.Key}={OptionValues.Format(kv.Value)}")) + ")";

    // Validation helpers: every message names the record, the property, the study key and the allowed range.
    protected void CheckRange(string property, double value, double min, double max, string? why = null)
    {
        if (double.IsNaN(value) || value < min || value > max)
            throw new ArgumentException($"{Where(property)} = {OptionValues.Format(value)} is out of range; allowed: {OptionValues.Format(min)} to {OptionValues.Format(max)}{(why is null ? "" : $" ({why})")}.");
    }

    protected void CheckPositive(string property, double value)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentException($"{Where(property)} = {OptionValues.Format(value)} is out of range; allowed: greater than 0 (finite).");
    }

    protected void CheckProbability(string property, double value)
    {
        if (!(value >= 0 && value < 1))
            throw new ArgumentException($"{Where(property)} = {OptionValues.Format(value)} is out of range; allowed: 0 to 1 (1 excluded).");
    }

    protected void Fail(string property, object value, string allowed) =>
        throw new ArgumentException($"{Where(property)} = {OptionValues.Format(value)} is invalid; allowed: {allowed}.");

    string Where(string property)
    {
        var key = Describe().Options.FirstOrDefault(o => o.Property == property)?.Key;
        return $"{GetType().Name}.{property}{(key is null ? "" : $" ({key})")}";
    }
}

/// <summary>Reads, writes, parses and formats option values by reflection over the options records.</summary>
public static class OptionValues
{
    public static object? Get(PeftOptions options, OptionSpec spec) => Property(options.GetType(), spec).GetValue(options);

    /// <summary>Parses <paramref name="text"/> for <paramref name="spec"/> and sets it on a copy-in-progress record.</summary>
    public static void Set(PeftOptions options, OptionSpec spec, string text)
    {
        var prop = Property(options.GetType(), spec);
        prop.SetValue(options, Parse(prop.PropertyType, text, $"{options.GetType().Name}.{spec.Property} ({spec.Key})"));
    }

    static PropertyInfo Property(Type type, OptionSpec spec) =>
        type.GetProperty(spec.Property) ?? throw new InvalidOperationException($"{type.Name} has no property {spec.Property}");

    static object? Parse(Type type, string text, string what)
    {
        var under = Nullable.GetUnderlyingType(type);
        if (under is not null)
            return text.Trim() is "" or "null" or "None" ? null : Parse(under, text, what);
        text = text.Trim();
        try
        {
            if (type == typeof(int))
            {
                // The study's JSON sometimes writes whole numbers as 8.0.
                if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)) return i;
                var d = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
                if (d != Math.Floor(d) || Math.Abs(d) > int.MaxValue) throw new FormatException();
                return (int)d;
            }
            if (type == typeof(double)) return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (type == typeof(bool))
                return text.ToLowerInvariant() switch { "true" or "1" or "yes" => true, "false" or "0" or "no" => false, _ => throw new FormatException() };
            if (type.IsEnum)
            {
                var name = text.Replace("_", "").Replace("-", "");
                foreach (var n in Enum.GetNames(type))
                    if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return Enum.Parse(type, n);
                throw new FormatException();
            }
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new ArgumentException($"{what}: cannot read '{text}' as {Describe(type)}.");
        }
        throw new NotSupportedException($"{what}: options of type {type.Name} are not supported");
    }

    static string Describe(Type t) =>
        t == typeof(int) ? "a whole number" : t == typeof(double) ? "a number" : t == typeof(bool) ? "true or false"
        : t.IsEnum ? "one of " + string.Join(", ", Enum.GetNames(t).Select(Snake)) : t.Name;

    /// <summary>Invariant text for a value: numbers as JSON writes them, enums in snake_case, booleans lower case.</summary>
    public static string Format(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        Enum e => Snake(e.ToString()),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    public static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
