using System.Text.Json;
using System.Text.RegularExpressions;

namespace PeftWorkbench.Kernel.Execution;

/// <summary>The .NET Interactive forms our notebooks use, handled before Roslyn sees the cell. Handled lines become
/// spaces of the same length, so compile errors and cursor positions keep their line and column within the cell.</summary>
internal static partial class Directives
{
    public sealed record Parsed(string Code, bool Time);

    [GeneratedRegex(@"^\s*#r\s+""nuget:\s*([^,""]+?)\s*(?:,\s*([^""]*?)\s*)?""\s*$")] private static partial Regex NugetReference();
    [GeneratedRegex(@"^\s*#i\s+""nuget:\s*([^""]*?)\s*""\s*$")] private static partial Regex NugetSource();
    [GeneratedRegex(@"^\s*#!(\S+)")] private static partial Regex Magic();

    public static Parsed Parse(string cell, PackageCatalog packages)
    {
        var lines = cell.Replace("\r\n", "\n").Split('\n');
        bool time = false;
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (Magic().Match(line) is { Success: true } magic)
            {
                switch (magic.Groups[1].Value.ToLowerInvariant())
                {
                    case "csharp" or "c#": break;
                    case "time": time = true; break;
                    case var other:
                        throw new DirectiveException(i, $"#!{other} is not supported: this kernel runs C# only (#!csharp, #!time).");
                }
                lines[i] = new string(' ', line.Length);
            }
            else if (NugetSource().Match(line) is { Success: true })
            {
                lines[i] = new string(' ', line.Length); // package sources are irrelevant: the kernel ships its packages
            }
            else if (NugetReference().Match(line) is { Success: true } r)
            {
                var name = r.Groups[1].Value;
                var version = r.Groups[2].Success ? r.Groups[2].Value : "";
                packages.Require(name, version, i);
                lines[i] = new string(' ', line.Length);
            }
        }
        return new Parsed(string.Join('\n', lines), time);
    }
}

public sealed class DirectiveException(int line, string message) : Exception($"(line {line + 1}): {message}")
{
    public int Line { get; } = line;
}

/// <summary>The packages this kernel ships (from the host's deps.json): `#r "nuget: X, v"` is satisfied by them.</summary>
public sealed class PackageCatalog
{
    readonly Dictionary<string, string> versions = new(StringComparer.OrdinalIgnoreCase);
    public IReadOnlyDictionary<string, string> Packages => versions;

    public PackageCatalog()
    {
        foreach (var deps in (AppContext.GetData("APP_CONTEXT_DEPS_FILES") as string ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!File.Exists(deps)) continue;
            using var doc = JsonDocument.Parse(File.ReadAllText(deps));
            if (!doc.RootElement.TryGetProperty("libraries", out var libs)) continue;
            foreach (var lib in libs.EnumerateObject())
            {
                var type = lib.Value.TryGetProperty("type", out var t) ? t.GetString() : "";
                if (type is not ("package" or "project")) continue;
                var slash = lib.Name.IndexOf('/');
                if (slash > 0) versions.TryAdd(lib.Name[..slash], lib.Name[(slash + 1)..]);
            }
        }
        // Without a deps.json (an unusual host), the workbench itself is still known.
        versions.TryAdd("PeftWorkbench", Workbench.Version);
    }

    public void Require(string name, string version, int line)
    {
        if (!versions.TryGetValue(name, out var shipped))
            throw new DirectiveException(line,
                $"#r \"nuget: {name}\": this kernel cannot download packages; it ships {string.Join(", ", Listed())}.");
        if (version is "" or "*" || shipped == version || (version.EndsWith('*') && shipped.StartsWith(version.TrimEnd('*'))))
            return;
        // The workbench's version names what .NET Interactive would find in the local feed, so say what that holds.
        var feed = name.Equals("PeftWorkbench", StringComparison.OrdinalIgnoreCase) ? FeedNote() : "";
        throw new DirectiveException(line, $"#r \"nuget: {name}, {version}\": this kernel ships {name} {shipped} only{feed}.");
    }

    static string FeedNote()
    {
        if (Notebooks.LocalFeed.Folder() is not { } folder)
            return $"; the local feed (NuGet source \"{Notebooks.LocalFeed.SourceName}\") is not set up: {Notebooks.LocalFeed.SetupCommand} creates it";
        var versions = Notebooks.LocalFeed.Versions(folder);
        return $"; the local feed {folder} holds {(versions.Count == 0 ? "no PeftWorkbench package" : "PeftWorkbench " + string.Join(", ", versions))}";
    }

    /// <summary>The packages worth naming: the workbench and its direct libraries, not runtime plumbing.</summary>
    IEnumerable<string> Listed() => versions
        .Where(kv => !kv.Key.StartsWith("System.", StringComparison.Ordinal) && !kv.Key.StartsWith("runtime.", StringComparison.Ordinal)
                     && !kv.Key.StartsWith("Microsoft.NET", StringComparison.Ordinal) && !kv.Key.StartsWith("xunit", StringComparison.Ordinal))
        .OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase)
        .Select(kv => $"{kv.Key} {kv.Value}");
}
