import asyncio, time, json
import websockets, httpx
from comfy.fake.server import FakeConfig, running_fake
from bench.stack import generation_input
from comfy.templates import load_templates, validate_params, build_workflow
from pathlib import Path
async def main():
    async with running_fake(FakeConfig(step_time=0.0005, preview=False, stamp_messages=True)) as h:
        t = load_templates([Path("bench/templates")])["bench_txt2img"]
        async with websockets.connect(h.ws_url+"?clientId=x") as ws:
            for steps in (1000, 2000):
                wf = build_workflow(t, validate_params(t, {"prompt":"x","width":64,"height":64,"seed":steps,"sampler_steps":steps, "checkpoint": "sd_xl_base_1.0.safetensors"}), filename_prefix="x")
                async with httpx.AsyncClient() as c:
                    r = await c.post(h.url+"/prompt", json={"prompt": wf, "client_id":"x"})
                    print(r.status_code, r.text[:200])
                stamps=[]
                while True:
                    m = json.loads(await ws.recv())
                    if m["type"]=="progress": stamps.append(m["data"]["safelight_ts"])
                    if m["type"]=="execution_success": break
                print(len(stamps), (len(stamps)-1)/(stamps[-1]-stamps[0]))
asyncio.run(main())
