using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PeftWorkbench.Kernel.Protocol;

/// <summary>One Jupyter message (protocol 5.3): routing identities, the four JSON parts, and raw buffers.</summary>
public sealed class Message
{
    public const string Delimiter = "<IDS|MSG>";
    public const string ProtocolVersion = "5.3";

    public List<byte[]> Identities { get; init; } = new();
    public JsonObject Header { get; init; } = new();
    public JsonObject ParentHeader { get; init; } = new();
    public JsonObject Metadata { get; init; } = new();
    public JsonObject Content { get; init; } = new();
    public List<byte[]> Buffers { get; init; } = new();

    /// <summary>The header's msg_type; "" when absent or not a string (a wrongly typed field must never throw).</summary>
    public string MsgType => Text(Header, "msg_type") ?? "";
    public string MsgId => Text(Header, "msg_id") ?? "";
    /// <summary>The HMAC hex digest the message arrived with ("" when unsigned or built here).</summary>
    public string Signature { get; init; } = "";

    /// <summary>A string field, or null when it is absent or of another JSON type.</summary>
    public static string? Text(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>A fresh header: uuid msg_id, ISO 8601 UTC date with microseconds, protocol version.</summary>
    public static JsonObject NewHeader(string msgType, string session, string username = "kernel") => new()
    {
        ["msg_id"] = Guid.NewGuid().ToString(),
        ["session"] = session,
        ["username"] = username,
        ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
        ["msg_type"] = msgType,
        ["version"] = ProtocolVersion,
    };

    /// <summary>A reply or side effect of <paramref name="parent"/>: same routing identities, parent header = its header.</summary>
    public static Message ReplyTo(Message parent, string msgType, JsonObject content, string session) => new()
    {
        Identities = parent.Identities,
        Header = NewHeader(msgType, session),
        ParentHeader = (JsonObject)parent.Header.DeepClone(),
        Content = content,
    };
}

/// <summary>Turns messages into ZeroMQ frames and back, signing with HMAC-SHA256 (empty key = no signing, as Jupyter allows).</summary>
public sealed class WireCodec
{
    readonly byte[] key;
    public WireCodec(string key) => this.key = Encoding.UTF8.GetBytes(key);

    public bool Signs => key.Length > 0;

    static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public string Sign(IReadOnlyList<byte[]> parts)
    {
        if (!Signs) return "";
        using var h = new HMACSHA256(key);
        foreach (var p in parts) h.TransformBlock(p, 0, p.Length, null, 0);
        h.TransformFinalBlock(Array.Empty<byte>(), 0, 0);
        return Convert.ToHexStringLower(h.Hash!);
    }

    public List<byte[]> Encode(Message m)
    {
        var parts = new[] { m.Header, m.ParentHeader, m.Metadata, m.Content }.Select(j => Encoding.UTF8.GetBytes(j.ToJsonString(Json))).ToArray();
        var frames = new List<byte[]>(m.Identities);
        frames.Add(Encoding.ASCII.GetBytes(Message.Delimiter));
        frames.Add(Encoding.ASCII.GetBytes(Sign(parts)));
        frames.AddRange(parts);
        frames.AddRange(m.Buffers);
        return frames;
    }

    /// <summary>Parses and verifies frames. Returns null with a reason when the message is malformed or its signature
    /// is missing or wrong; such a message must be dropped, never run.</summary>
    public Message? Decode(IReadOnlyList<byte[]> frames, out string? problem)
    {
        problem = null;
        var delim = Encoding.ASCII.GetBytes(Message.Delimiter);
        int d = -1;
        for (int i = 0; i < frames.Count; i++) if (frames[i].AsSpan().SequenceEqual(delim)) { d = i; break; }
        if (d < 0) { problem = "no <IDS|MSG> delimiter"; return null; }
        if (frames.Count < d + 6) { problem = $"{frames.Count - d - 1} frames after the delimiter, expected at least 5"; return null; }
        var parts = new[] { frames[d + 2], frames[d + 3], frames[d + 4], frames[d + 5] };
        if (Signs)
        {
            var given = frames[d + 1];
            if (given.Length == 0) { problem = "missing signature"; return null; }
            var expected = Encoding.ASCII.GetBytes(Sign(parts));
            // Constant time: the comparison must not reveal how many leading characters matched.
            if (!CryptographicOperations.FixedTimeEquals(given, expected)) { problem = "bad signature"; return null; }
        }
        Message m;
        try
        {
            m = new Message
            {
                Identities = frames.Take(d).ToList(),
                Header = ParseObject(parts[0]),
                ParentHeader = ParseObject(parts[1]),
                Metadata = ParseObject(parts[2]),
                Content = ParseObject(parts[3]),
                Buffers = frames.Skip(d + 6).ToList(),
                Signature = Encoding.ASCII.GetString(frames[d + 1]),
            };
        }
        catch (JsonException e) { problem = "invalid JSON: " + e.Message; return null; }
        // JsonObject builds its dictionary lazily and throws on duplicate keys at first access: ParseObject walks
        // every object now, so a duplicated key is refused here instead of deep inside a handler.
        catch (ArgumentException e) { problem = "invalid JSON (a duplicated key?): " + e.Message; return null; }
        if (Message.Text(m.Header, "msg_type") is not { Length: > 0 }) { problem = "header msg_type missing or not a string"; return null; }
        return m;
    }

    static JsonObject ParseObject(byte[] utf8)
    {
        var o = JsonNode.Parse(utf8) as JsonObject ?? throw new JsonException("expected a JSON object");
        Touch(o);
        return o;
    }

    static void Touch(JsonNode? node)
    {
        if (node is JsonObject o) foreach (var (_, v) in o) Touch(v);
        else if (node is JsonArray a) foreach (var v in a) Touch(v);
    }
}

/// <summary>The signatures of recently accepted messages, so a replayed (captured and re-sent) message is refused, as
/// Jupyter's own Session does. Bounded: past <see cref="Capacity"/> the oldest are forgotten first.</summary>
public sealed class SignatureHistory(int capacity = 1 << 16)
{
    public int Capacity { get; } = capacity;
    readonly HashSet<string> seen = new(StringComparer.Ordinal);
    readonly Queue<string> order = new();

    /// <summary>False when the signature was seen before (a replay). Unsigned messages ("") are never recorded.</summary>
    public bool Add(string signature)
    {
        if (signature.Length == 0) return true;
        lock (seen)
        {
            if (!seen.Add(signature)) return false;
            order.Enqueue(signature);
            if (order.Count > Capacity) seen.Remove(order.Dequeue());
            return true;
        }
    }
}
