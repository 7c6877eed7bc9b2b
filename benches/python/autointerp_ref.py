"""Reference for `cargo xtask bench autointerp`: the tutorial's request loop (one latent after
another, the `openai` client, as AutoInterp.run/get_response) and an asyncio version with a
semaphore, on the same requests and the same mock server.

    python benches/python/autointerp_ref.py REQUESTS.json BASE_URL CONCURRENCY MAX_TOK_GEN MAX_TOK_PRED
"""

import asyncio
import json
import sys
import time

from openai import AsyncOpenAI, OpenAI


def main():
    requests = json.load(open(sys.argv[1]))
    base, conc = sys.argv[2], int(sys.argv[3])
    max_gen, max_pred = int(sys.argv[4]), int(sys.argv[5])

    client = OpenAI(api_key="bench", base_url=base, max_retries=0)

    def get_response(messages, max_tokens):
        result = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, n=1, max_tokens=max_tokens, stream=False
        )
        return [choice.message.content.strip() for choice in result.choices]

    t0 = time.perf_counter()
    for r in requests:
        get_response(r["generation"], max_gen)
        get_response(r["scoring"], max_pred)
    sequential = time.perf_counter() - t0

    async def run_async():
        aclient = AsyncOpenAI(api_key="bench", base_url=base, max_retries=0)
        sem = asyncio.Semaphore(conc)

        async def ask(messages, max_tokens):
            async with sem:
                res = await aclient.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, n=1, max_tokens=max_tokens, stream=False
                )
                return res.choices[0].message.content

        async def latent(r):
            await ask(r["generation"], max_gen)
            await ask(r["scoring"], max_pred)

        t = time.perf_counter()
        await asyncio.gather(*(latent(r) for r in requests))
        return time.perf_counter() - t

    asynchronous = asyncio.run(run_async())
    print(json.dumps({"sequential_s": sequential, "asyncio_s": asynchronous}))


if __name__ == "__main__":
    main()
