using System.Text.Json;

namespace PeftWorkbench.Kernel.Execution;

/// <summary>The .NET Interactive forms our notebooks use, handled before Roslyn sees the cell. Handled lines become
/// spaces of the same length, so compile errors and cursor positions keep their line and column within the cell.
/// Each line is read once, left to right, by <see cref="Scanner"/>: the work grows with the cell's length and nothing
/// else (the regular expressions it replaces backtracked cubically on a line of spaces: 20,000 of them hung a kernel).</summary>
internal static class Directives
{
    public sealed record Parsed(string Code, bool Time);

    /// <summary>Characters the parser has looked at in this process (tests count it against the input's length).</summary>
    internal static long CharsExamined;

    public static Parsed Parse(string cell, PackageCatalog packages)
    {
        var lines = cell.Replace("\r\n", "\n").Split('\n');
        bool time = false;
        for (int i = 0; i < lines.Length; i++)
        {
            var s = new Scanner(lines[i]);
            try
            {
                if (Handle(s, i, packages, ref time)) lines[i] = new string(' ', lines[i].Length);
            }
            finally { Interlocked.Add(ref CharsExamined, s.Looked); }
        }
        return new Parsed(string.Join('\n', lines), time);
    }

    /// <summary>Whether line <paramref name="i"/> is a directive this kernel handles (it then becomes blank); a
    /// malformed nuget directive is our error, not Roslyn's "Metadata file ... could not be found" later.</summary>
    static bool Handle(Scanner s, int i, PackageCatalog packages, ref bool time)
    {
        s.SkipSpaces();
        if (s.Take("#!"))
        {
            var magic = s.Word();
            if (magic.Length == 0) return false;
            switch (magic.ToLowerInvariant())
            {
                case "csharp" or "c#": return true;
                case "time": time = true; return true;
                case var other: throw new DirectiveException(i, $"#!{other} is not supported: this kernel runs C# only (#!csharp, #!time).");
            }
        }
        bool reference = s.Take("#r");
        if (!reference && !s.Take("#i")) return false;
        var kind = reference ? "#r" : "#i";
        if (!s.SkipSpaces() && !s.Next('"')) return false; // #region, #if, ...: not ours
        if (!s.Take("\"nuget:")) return false;              // #r "some.dll": Roslyn's
        var body = s.Until('"');
        if (!s.Take("\""))
            throw new DirectiveException(i, $"{kind} \"nuget:{Clip(body)}: no closing quote; write {kind} \"nuget: NAME, VERSION\".");
        s.SkipSpaces();
        if (!s.End)
            throw new DirectiveException(i, $"{kind} \"nuget:{Clip(body)}\" is followed by '{Clip(s.Rest())}': put comments and code on a line of their own.");
        if (!reference) return true; // package sources are irrelevant: the kernel ships its packages
        int comma = body.IndexOf(',');
        var name = (comma < 0 ? body : body[..comma]).Trim();
        var version = comma < 0 ? "" : body[(comma + 1)..].Trim();
        if (name.Length == 0)
            throw new DirectiveException(i, "#r \"nuget:\" names no package; write #r \"nuget: PeftWorkbench, VERSION\".");
        packages.Require(name, version, i);
        return true;
    }

    /// <summary>At most 60 characters of a value in a message (a hostile line may be megabytes).</summary>
    static string Clip(string s) => s.Length <= 60 ? s : s[..57] + "...";

    /// <summary>One pass over a line, counting every character it looks at.</summary>
    sealed class Scanner(string text)
    {
        int at;
        public long Looked { get; private set; }
        public bool End => at >= text.Length;
        char Look(int k) { Looked++; return text[k]; }

        /// <summary>Skips blanks; true if there were any.</summary>
        public bool SkipSpaces()
        {
            int from = at;
            while (at < text.Length && char.IsWhiteSpace(Look(at))) at++;
            return at > from;
        }

        public bool Next(char c) => at < text.Length && Look(at) == c;

        /// <summary>Consumes <paramref name="word"/> if the line continues with it.</summary>
        public bool Take(string word)
        {
            for (int k = 0; k < word.Length; k++)
                if (at + k >= text.Length || Look(at + k) != word[k]) return false;
            at += word.Length;
            return true;
        }

        /// <summary>The characters up to a blank or the end.</summary>
        public string Word()
        {
            int from = at;
            while (at < text.Length && !char.IsWhiteSpace(Look(at))) at++;
            return text[from..at];
        }

        /// <summary>The characters up to <paramref name="stop"/> (not consumed) or the end.</summary>
        public string Until(char stop)
        {
            int from = at;
            while (at < text.Length && Look(at) != stop) at++;
            Looked += at - from; // the substring copies them once more
            return text[from..at];
        }

        public string Rest() { Looked += text.Length - at; var r = text[at..]; at = text.Length; return r; }
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
