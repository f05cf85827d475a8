using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;

namespace PeftWorkbench.Kernel.Protocol;

/// <summary>A minimal Jupyter client over real sockets: DEALER for shell and control, SUB for iopub, REQ for heartbeat.
/// The protocol tests and `peft kernel bench` drive the kernel with it.</summary>
public sealed class KernelClient : IDisposable
{
    public readonly DealerSocket Shell = new(), Control = new();
    readonly SubscriberSocket iopub = new();
    public readonly RequestSocket Heartbeat = new();
    public readonly WireCodec Codec;
    readonly string session = Guid.NewGuid().ToString();
    readonly List<Message> published = new();
    readonly Thread listener;
    volatile bool closing;
    int unverified;
    /// <summary>iopub messages whose signature did not verify (dropped).</summary>
    public int Unverified => unverified;
    public static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(60);

    public KernelClient(ConnectionInfo c)
    {
        Codec = new WireCodec(c.Key);
        Shell.Connect(c.Address(c.ShellPort));
        Control.Connect(c.Address(c.ControlPort));
        Heartbeat.Connect(c.Address(c.HbPort));
        iopub.Connect(c.Address(c.IopubPort));
        iopub.SubscribeToAnyTopic();
        listener = new Thread(Listen) { IsBackground = true };
        listener.Start();
        // PUB/SUB drops what is published before the subscription lands: ask until iopub answers (as jupyter_client does).
        var deadline = DateTime.UtcNow + Timeout;
        while (DateTime.UtcNow < deadline)
        {
            var probe = Send(Shell, "kernel_info_request", new JsonObject());
            if (Receive(Shell) is null) throw new TimeoutException("no kernel_info_reply on shell");
            if (WaitFor(m => m.ParentHeader["msg_id"]?.GetValue<string>() == probe.MsgId, TimeSpan.FromMilliseconds(500)) is not null) return;
        }
        throw new TimeoutException("iopub never delivered a status message");
    }

    /// <summary>Loopback channels on free ports, with a fresh signing key.</summary>
    public static ConnectionInfo FreeConnection() => new()
    {
        Key = Guid.NewGuid().ToString(), ShellPort = FreePort(), IopubPort = FreePort(), StdinPort = FreePort(), ControlPort = FreePort(), HbPort = FreePort(),
    };

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    void Listen()
    {
        var frames = new List<byte[]>();
        while (!closing)
        {
            if (!iopub.TryReceiveMultipartBytes(TimeSpan.FromMilliseconds(50), ref frames)) continue;
            var m = Codec.Decode(frames, out var problem);
            if (m is null) { Interlocked.Increment(ref unverified); continue; } // a kernel that signs wrongly: Request times out
            lock (published) { published.Add(m); Monitor.PulseAll(published); }
        }
    }

    public Message NewMessage(string type, JsonObject content) => new() { Header = Message.NewHeader(type, session, "test"), Content = content };

    public Message Send(DealerSocket socket, string type, JsonObject content)
    {
        var m = NewMessage(type, content);
        socket.SendMultipartBytes(Codec.Encode(m));
        return m;
    }

    public Message? Receive(DealerSocket socket, TimeSpan? timeout = null)
    {
        var frames = new List<byte[]>();
        if (!socket.TryReceiveMultipartBytes(timeout ?? Timeout, ref frames)) return null;
        return Codec.Decode(frames, out var problem) ?? throw new InvalidDataException("reply failed to verify: " + problem);
    }

    public Message Request(DealerSocket socket, string type, JsonObject content, out List<Message> iopubMessages)
    {
        var request = Send(socket, type, content);
        var reply = Receive(socket) ?? throw new TimeoutException($"no reply to {type}");
        if (reply.ParentHeader["msg_id"]?.GetValue<string>() != request.MsgId) throw new InvalidDataException($"{reply.MsgType} answers another request");
        iopubMessages = IopubUntilIdle(request.MsgId);
        return reply;
    }

    /// <summary>iopub messages caused by one request, from status busy to status idle.</summary>
    public List<Message> IopubUntilIdle(string msgId)
    {
        bool Mine(Message m) => m.ParentHeader["msg_id"]?.GetValue<string>() == msgId;
        if (WaitFor(m => Mine(m) && m.MsgType == "status" && m.Content["execution_state"]?.GetValue<string>() == "idle", Timeout) is null)
            throw new TimeoutException("no status idle on iopub for " + msgId);
        lock (published) return published.Where(Mine).ToList();
    }

    public Message? WaitFor(Func<Message, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (published)
            while (true)
            {
                var found = published.FirstOrDefault(match);
                if (found is not null) return found;
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return null;
                Monitor.Wait(published, left);
            }
    }

    public void Dispose()
    {
        closing = true;
        listener.Join();
        foreach (var s in new NetMQSocket[] { Shell, Control, iopub, Heartbeat }) s.Dispose();
    }
}
