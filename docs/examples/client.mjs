// A minimal emotrack client in JavaScript, for Node >= 22 (which has WebSocket built in)
// or, with the two process lines removed, a browser page.
//
//   node client.mjs [ws://127.0.0.1:8765] [SECRET]
//
// It asks for 2 predictions per second and only the fields it uses (protocol v1
// "subscribe"), and reconnects when emotrack restarts.
const base = process.argv[2] || "ws://127.0.0.1:8765";
const token = process.argv[3];
const url = token ? `${base}/?token=${encodeURIComponent(token)}` : base;

const f = (x) => (x >= 0 ? "+" : "") + x.toFixed(2);

function connect() {
  const ws = new WebSocket(url);
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") {
      if (m.protocol !== 1) throw new Error(`this client speaks protocol 1, the server ${m.protocol}`);
      console.log(`# ${m.server}, model ${m.model.name}, source ${m.source.name}`);
      ws.send(JSON.stringify({ type: "subscribe", rate: 2, fields: ["valence", "arousal"] }));
    } else if (m.type === "frame") {
      console.log(`t=${m.t.toFixed(1).padStart(7)} s  valence ${f(m.valence)}  arousal ${f(m.arousal)}`);
    } else if (m.type === "status" || m.type === "error") {
      console.log("#", JSON.stringify(m));
    }
  };
  ws.onclose = (ev) => {
    if (ev.code === 1008) {  // wrong token or origin: retrying will not help
      console.error(`refused: ${ev.reason}`);
      process.exit(2);
    }
    console.log("# not connected; retrying in 2 s");
    setTimeout(connect, 2000);
  };
}
connect();
