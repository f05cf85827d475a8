using System.Text.Json;
using PeftWorkbench.Checkpoints;

namespace PeftWorkbench.Tuning;

/// <summary>
/// identity.json: per profile, protocol and task, the <see cref="TrialIdentity"/> (data, backbone and its digest,
/// precision) its trials were made with. <see cref="CheckIdentity"/> runs before any finished trial is read back.
/// </summary>
public sealed partial class ResultsStore
{
    string IdentityPath => Path.Combine(Dir, "identity.json");

    /// <summary>
    /// Records <paramref name="identity"/> for <paramref name="scope"/> (<see cref="TrialIdentity.Scope"/>) the first
    /// time, and throws <see cref="InvalidOperationException"/> naming every field that differs when the store holds
    /// another one. A store from before identity.json takes the identity of its first check (its trials cannot say
    /// what they were made with), and <see cref="Notices"/> says so once.
    /// </summary>
    public void CheckIdentity(string scope, TrialIdentity identity)
    {
        using var _ = Lock();
        var all = ReadIdentities();
        var now = identity.Fields.ToDictionary(f => f.Name, f => f.Value);
        if (all.TryGetValue(scope, out var recorded))
        {
            var differs = identity.Fields.Where(f => !recorded.TryGetValue(f.Name, out var v) || v != f.Value)
                .Select(f => $"{f.Name} {(recorded.TryGetValue(f.Name, out var v) ? $"'{v}'" : "(not recorded)")} there, '{f.Value}' now").ToList();
            if (differs.Count == 0) return;
            throw new InvalidOperationException(
                $"Results store {Dir} holds {scope} trials made with another backbone, data or precision: {string.Join("; ", differs)}. " +
                "Reading them back would answer for a run they are not. Use another store (--out), or move this one aside.");
        }
        var parts = scope.Split('/');
        // Only trials of the whole train800 can predate identity.json (sizes came later, each with its own scope).
        if (parts.Length == 3 && Read().Records.Any(r => r.Config.Profile == parts[0] && r.Config.Protocol == parts[1] && r.Config.Task == parts[2]
            && r.Config.TrainImages is null))
            Notices?.Invoke($"Results store {Dir}: its {scope} trials were recorded before stores noted their backbone and data; " +
                $"taking them as made with {string.Join(", ", identity.Fields.Select(f => $"{f.Name} {f.Value}"))}.");
        all[scope] = now;
        AtomicFile.Write(IdentityPath, fs => JsonSerializer.Serialize(fs, all, new JsonSerializerOptions { WriteIndented = true }));
    }

    SortedDictionary<string, Dictionary<string, string>> ReadIdentities()
    {
        if (Directory.Exists(IdentityPath)) throw new IOException($"Results store {Dir}: {IdentityPath} is a folder, not the identity file.");
        if (!File.Exists(IdentityPath)) return new(StringComparer.Ordinal);
        try
        {
            var read = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, string>>>(File.ReadAllText(IdentityPath));
            if (read is null || read.Values.Any(v => v is null || v.Values.Any(x => x is null))) throw new JsonException("not an object of objects of strings");
            return new(read, StringComparer.Ordinal);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Results store {Dir}: {IdentityPath} is not an identity file ({e.Message}). " +
                "It says what backbone and data each profile's trials were made with; restore it or move the store aside.", e);
        }
    }
}
