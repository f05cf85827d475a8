using System.Text.Json;
using System.Text.Json.Serialization;

namespace PeftWorkbench.Kernel.Protocol;

/// <summary>The connection file Jupyter writes for a kernel: where to bind and how to sign.</summary>
public sealed record ConnectionInfo
{
    [JsonPropertyName("transport")] public string Transport { get; init; } = "tcp";
    [JsonPropertyName("ip")] public string Ip { get; init; } = "127.0.0.1";
    [JsonPropertyName("shell_port")] public int ShellPort { get; init; }
    [JsonPropertyName("iopub_port")] public int IopubPort { get; init; }
    [JsonPropertyName("stdin_port")] public int StdinPort { get; init; }
    [JsonPropertyName("control_port")] public int ControlPort { get; init; }
    [JsonPropertyName("hb_port")] public int HbPort { get; init; }
    [JsonPropertyName("key")] public string Key { get; init; } = "";
    [JsonPropertyName("signature_scheme")] public string SignatureScheme { get; init; } = "hmac-sha256";
    [JsonPropertyName("kernel_name")] public string? KernelName { get; init; }

    /// <summary>ZeroMQ address of one channel: tcp://ip:port, or ipc://ip-port as Jupyter spells it.</summary>
    public string Address(int port) => Transport == "ipc" ? $"ipc://{Ip}-{port}" : $"{Transport}://{Ip}:{port}";

    public static ConnectionInfo Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Connection file not found: {path}", path);
        ConnectionInfo? info;
        try { info = JsonSerializer.Deserialize<ConnectionInfo>(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"Connection file {path} is not valid JSON: {e.Message}", e); }
        if (info is null) throw new InvalidDataException($"Connection file {path} is empty.");
        if (info.Transport is not ("tcp" or "ipc")) throw new InvalidDataException($"Connection file {path}: transport '{info.Transport}' is not tcp or ipc.");
        if (info.Key.Length > 0 && info.SignatureScheme != "hmac-sha256")
            throw new InvalidDataException($"Connection file {path}: signature_scheme '{info.SignatureScheme}' is not supported (only hmac-sha256).");
        foreach (var (name, port) in new[] { ("shell_port", info.ShellPort), ("iopub_port", info.IopubPort), ("stdin_port", info.StdinPort), ("control_port", info.ControlPort), ("hb_port", info.HbPort) })
            if (port is <= 0 or > 65535) throw new InvalidDataException($"Connection file {path}: {name} {port} is not a port number.");
        return info;
    }

    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true }));
}
