"""The saga explorer in a real browser (Debian's Chromium, driven by Playwright) against a
real coordinator with the reference services on the test broker; and schemathesis
against the live API and its OpenAPI document.

Screenshots are left in $TMPDIR/sagas-ui-screens (or SAGAS_UI_SCREENS); each test
prints where.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sagas.kafka.kafka_settings import KafkaSettings
from tests.integration.api_system import TOKEN, http
from tests.integration.explorer_system import (
    CHROMIUM_ARGS,
    ExplorerSystem,
    need_chromium,
    screens_dir,
)
from tests.kafka_fixtures import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

#: Playwright's own waits (ms): a saga of the order system ends within ~20 s here
LONG = 60_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, embedded_broker: Any
) -> AsyncIterator[ExplorerSystem]:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    shop = ExplorerSystem(kafka, tmp_path_factory.mktemp("explorer"), embedded_broker is not None)
    try:
        await shop.start_all()
        yield shop
    finally:
        await shop.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = need_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    tab = await context.new_page()
    yield tab
    await context.close()


async def shot(page: Any, name: str) -> Path:
    path = screens_dir() / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


async def saga_status(system: ExplorerSystem, saga_id: str, wanted: set[str]) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        code, body = await asyncio.to_thread(http, "GET", f"{system.url}/sagas/{saga_id}", None)
        return body if code == 200 and body["status"] in wanted else None

    return await eventually(  # type: ignore[no-any-return]
        reached, 90, 0.2, what=f"saga {saga_id} reaching {wanted}"
    )


async def use_token(page: Any, token: str) -> None:
    await page.fill("#token", token)
    await page.press("#token", "Enter")
    await page.get_by_text("token set for this tab").wait_for()


async def test_find_a_compensated_order_by_its_order_id_and_see_compensations_last_first(
    system: ExplorerSystem, page: Any
) -> None:
    from playwright.async_api import expect

    undone, order_id = await system.place_order(refused=True)
    done, _ = await system.place_order(refused=False)
    for refused in (True, False, False):  # more to show in the list
        await system.place_order(refused=refused)
    await saga_status(system, undone, {"compensated"})
    await saga_status(system, done, {"completed"})

    await page.goto(f"{system.url}/ui/#/sagas")
    await expect(page.locator("#saga-list tbody tr")).not_to_have_count(0)
    await shot(page, "saga-list")

    await page.fill("#find", order_id)
    await page.press("#find", "Enter")  # the search form, from the keyboard
    rows = page.locator("#saga-list tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-status", "compensated")
    await rows.first.get_by_role("link", name=undone).click()

    await expect(page.locator("h1")).to_have_text(f"Saga {undone}")
    await expect(page.locator("#facts [data-status]")).to_have_text("compensated")
    await expect(page.locator("#facts")).to_contain_text("order version 1")
    undo_rows = page.locator("#timeline tbody tr[data-phase=undo]")
    await expect(undo_rows).to_have_count(3)
    order = [await r.get_attribute("data-step") for r in await undo_rows.all()]
    assert order == ["capture_payment", "authorize_payment", "reserve_inventory"], order
    do_rows = page.locator("#timeline tbody tr[data-phase=do]")
    last_do = await do_rows.last.get_attribute("data-step")
    assert last_do == "schedule_shipment", "the failed step comes before every compensation"
    await expect(page.locator("#ctx-h + details")).to_contain_text(order_id)
    await expect(page.locator("#history")).to_contain_text("saga.compensated")
    await shot(page, "saga-page")


async def test_abort_from_the_page_is_refused_without_the_token_then_ends_aborted(
    system: ExplorerSystem, page: Any
) -> None:
    from playwright.async_api import expect

    # The page is open before the saga exists: it shows it as soon as it starts (live).
    saga_id = next(system.ids_accepted)
    await page.goto(f"{system.url}/ui/#/saga/{saga_id}")
    await expect(page.locator(".error")).to_contain_text("no saga")
    data = {
        "order_id": "ord-abort-1",
        "customer_id": "c1",
        "amount": 1250,
        "lines": [{"sku": "SKU-001", "qty": 1}],
    }
    await system.place([(saga_id, data)])
    await expect(page.locator("#facts [data-status]")).to_have_text("running", timeout=LONG)

    await page.fill("#action-reason", "customer cancelled on the phone")
    await page.click("#action-abort")
    await page.click("#confirm-ok")
    result = page.locator("#action-result")
    await expect(result).to_contain_text("Refused (401, not authorised)")
    await expect(result).to_contain_text("token")

    await use_token(page, TOKEN)
    await page.click("#action-abort")
    await page.click("#confirm-ok")
    await expect(result).not_to_contain_text("Refused", timeout=LONG)
    await expect(result).to_contain_text("Abort")
    await expect(page.locator("#facts [data-status]")).to_have_text("aborted", timeout=LONG)
    await expect(page.locator("#facts")).to_contain_text("customer cancelled on the phone")
    await expect(page.locator("#timeline tbody")).to_contain_text("cancelled")
    await expect(page.locator("#timeline tbody")).not_to_contain_text("waiting")
    await shot(page, "saga-aborted")

    # A second abort is refused by the coordinator, and the page says why.
    await page.click("#action-abort")
    await page.click("#confirm-ok")
    await expect(result).to_contain_text("Refused (409")


async def test_redrive_a_dead_letter_from_the_page(system: ExplorerSystem, page: Any) -> None:
    from playwright.async_api import expect

    key = f"dlq-{system.prefix[2:10]}"
    await system.send_garbage("inventory.replies", key)
    await page.goto(f"{system.url}/ui/#/deadletters")
    rows = page.locator("#letters tbody tr", has_text=key)
    await expect(rows).to_have_count(1, timeout=LONG)
    await expect(rows.first).to_contain_text(f"{system.prefix}inventory.replies")

    await use_token(page, TOKEN)
    await rows.first.get_by_role("button", name="Re-drive").click()
    await page.click("#confirm-ok")
    status = page.locator("#redrive-result")
    await expect(status).to_contain_text(f"sent to {system.prefix}inventory.replies[")
    await shot(page, "dead-letters")

    # Still not a CloudEvent: the coordinator dead-letters it again, with the same reason.
    async def twice() -> bool:
        await page.click("#refresh-letters")
        return await rows.count() == 2

    await eventually(twice, 60, 0.5, what="the re-driven record back among the dead letters")


async def test_the_overview_links_to_what_needs_attention_by_keyboard(
    system: ExplorerSystem, page: Any
) -> None:
    from playwright.async_api import expect

    saga_id, _ = await system.place_order(refused=False)
    await saga_status(system, saga_id, {"running", "completed"})
    await page.goto(f"{system.url}/ui/")
    await expect(page.locator("#in-flight tr[data-saga=order]")).to_be_visible()
    await expect(page.locator("#dead-letter-count")).to_contain_text("dead letter")
    await expect(page.locator("a[href='/openapi.json']")).to_be_visible()
    await shot(page, "overview")
    await expect(page.locator("#view")).to_be_focused()
    # Keyboard only: focus starts on the page's content; Tab to the dead letters, Enter.
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "dead-letter-count":
            break
    else:
        raise AssertionError("Tab never reached the dead-letter link of the overview")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Dead letters")
    # The heading comes before the list is fetched; the router moves the focus to the
    # page once it is whole. Tabbing before that loses the presses made meanwhile.
    await expect(page.locator("#view")).to_be_focused()
    # ... and from there, Shift+Tab back up to the navigation, to the list of sagas.
    for _ in range(12):
        await page.keyboard.press("Shift+Tab")
        if await page.evaluate("document.activeElement.dataset.nav") == "sagas":
            break
    else:
        raise AssertionError("Shift+Tab never reached the navigation's link to the sagas")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Sagas")


async def test_the_live_api_matches_its_openapi_document(
    system: ExplorerSystem, tmp_path: Path
) -> None:
    """schemathesis: no 5xx, every status, content type and body as documented."""
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.fail("schemathesis is missing: pip install -e '.[dev]'")
    args = [
        str(cli),
        "run",
        f"{system.url}/openapi.json",
        "--url",
        system.url,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--max-examples",
        "12",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "21",
        "--request-timeout",
        "20",
        "--no-color",
        # with the token, mutations get past 401 to their own checks (404, 400, 409)
        "--header",
        f"Authorization: Bearer {TOKEN}",
    ]
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )  # in tmp_path: schemathesis keeps its example database in the working directory
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    print(done.stdout[-1500:])
