"""The dashboard at /ui, loaded in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): it shows the endpoints and their variants, its charts follow live traffic,
a weight change shows up, events are listed, and it loads nothing from anywhere but berth.
A screenshot is saved to tests/artifacts/dashboard.png."""

import os
import re
import threading
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import SessionNotCreatedException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from conftest import ROOT, deploy

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def browser(tmp_path):
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "the dashboard test needs Debian's chromium and chromium-driver (scripts/test.sh installs them)"
    )
    os.environ["SE_OFFLINE"] = "true"  # Selenium must not try to download a browser or driver
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1440,900",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Starting Chromium is the machine's part, not berth's: on a loaded machine its first start
    # can time out ("session not created"), so the session is tried again, at most three times.
    for attempt in range(3):
        try:
            driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
            break
        except SessionNotCreatedException:
            if attempt == 2:
                raise
            time.sleep(2)
    yield driver
    driver.quit()


def page_updates(driver):
    """How often the dashboard has drawn; 0 until its script has run (a loaded machine may still
    be running the page's scripts when the test first asks)."""
    return driver.execute_script("return window.berthDashboard ? window.berthDashboard.updates : 0")


def wait_for(check, what, timeout=30):
    """Polls `check` until it is truthy. The dashboard redraws its rows as data arrives, so an
    element found by one call may be replaced before it is read: that is "not yet", not failure."""
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        assert time.time() < deadline, f"the dashboard never showed {what}"
        time.sleep(0.2)


# Sum of every value the endpoint's invocations chart holds now.
CHART_TOTAL = """
const card = window.berthDashboard && window.berthDashboard.cards.get(arguments[0]);
if (!card || !card.plots.invocations.data) return null;
return card.plots.invocations.data.slice(1).flat().reduce((a, b) => a + (b || 0), 0);
"""


def cell(driver, ep, variant, cls):
    return driver.find_element(By.CSS_SELECTOR, f'#endpoint-{ep} tr[data-variant="{variant}"] td.{cls}').text


def test_dashboard_shows_endpoints_and_follows_live_traffic(berth, sm, runtime, browser):
    ep = deploy(sm, ["Variant1", "Variant2"])
    browser.get(f"{berth.url}/ui")
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'#endpoint-{ep}[data-status="InService"]'), "the endpoint")[0]
    rows = card.find_elements(By.CSS_SELECTOR, "tr.variant-row")
    assert [r.get_attribute("data-variant") for r in rows] == ["Variant1", "Variant2"]
    assert cell(browser, ep, "Variant1", "instances") == "1/1"
    assert "50%" in rows[0].text and "ml.m5.large" in rows[0].text
    assert len(card.find_elements(By.CSS_SELECTOR, ".plot canvas")) == 4, "four live charts"
    before = browser.execute_script(CHART_TOTAL, ep)
    assert before == 0, "no traffic yet"

    stop = threading.Event()
    sent = []

    def traffic():
        deadline = time.time() + 30
        while not stop.is_set() and time.time() < deadline:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
            sent.append(1)
            time.sleep(0.005)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        first = wait_for(lambda: browser.execute_script(CHART_TOTAL, ep), "traffic in the invocations chart")
        # The charts keep moving while traffic runs.
        wait_for(lambda: browser.execute_script(CHART_TOTAL, ep) > first * 1.5, "the chart growing")
        wait_for(lambda: float(cell(browser, ep, "Variant1", "rps") or 0) > 0, "requests per second")
        wait_for(lambda: cell(browser, ep, "Variant2", "p50") not in ("", "–"), "a latency percentile")
        assert cell(browser, ep, "Variant1", "errors") == "0.0%"

        sm.update_endpoint_weights_and_capacities(
            EndpointName=ep,
            DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 1}, {"VariantName": "Variant2", "DesiredWeight": 3}],
        )
        row = f'#endpoint-{ep} tr[data-variant="Variant1"]'
        wait_for(lambda: "25%" in browser.find_element(By.CSS_SELECTOR, row).text, "the new weights")
        wait_for(
            lambda: any("WeightsChanged" in li.text and ep in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li")),
            "the weight change event",
        )
        assert any("InstanceStarted" in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    finally:
        stop.set()
        sender.join()
    assert sent

    # Served by berth alone: every script and style came from the server itself.
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(r.startswith(berth.url) for r in resources), resources
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    assert browser.execute_script("return window.berthDashboard.failures") == 0


def test_dashboard_assets_and_empty_state(berth, browser):
    import requests

    for path, kind in (("/ui", "text/html"), ("/ui/assets/dashboard.js", "text/javascript"), ("/ui/assets/uPlot.min.css", "text/css")):
        r = requests.get(berth.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    assert requests.get(berth.url + "/ui/assets/nope.js", timeout=10).status_code == 404
    # Filtering to an endpoint that is not there shows the hint, not an error.
    browser.get(f"{berth.url}/ui")
    wait_for(lambda: page_updates(browser) > 0, "an update")
    browser.execute_script("""
        const s = document.querySelector('#endpoint-filter');
        s.append(new Option('gone', 'gone')); s.value = 'gone'; s.dispatchEvent(new Event('change'));
    """)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#endpoints .empty"), "the empty state")


def weights_of(sm, ep):
    return {v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName=ep)["ProductionVariants"]}


def test_experiment_controls_set_weights_promote_and_roll_back(berth, sm, browser):
    """The A/B panel's controls, clicked in Chromium, change the endpoint's weights (read back
    through boto3), each recorded as an event; the same action from another origin is refused."""
    import requests

    ep = deploy(sm, ["Variant1", "Variant2"])
    browser.set_window_size(1400, 900)
    browser.get(f"{berth.url}/ui")
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'#endpoint-{ep}[data-status="InService"]'), "the endpoint")[0]
    # The variant table fits its card at 1,400 px; the traffic chart's one point spans a minute, not years.
    fits = "const c = document.querySelector(arguments[0]); return [c.scrollWidth, c.clientWidth, c.querySelector('table.variants').scrollWidth];"
    scroll, width, table = browser.execute_script(fits, f"#endpoint-{ep}")
    assert scroll <= width and table <= width, (scroll, width, table)
    span = "const x = window.berthDashboard.cards.get(arguments[0]).plots.weights.chart.scales.x; return x.max - x.min;"
    assert 0 < browser.execute_script(span, ep) < 3600

    panel = card.find_element(By.CSS_SELECTOR, "section.ab")
    inputs = {i.get_attribute("data-variant"): i for i in panel.find_elements(By.CSS_SELECTOR, "input.weight")}
    assert set(inputs) == {"Variant1", "Variant2"}
    for variant, weight in (("Variant1", "1"), ("Variant2", "3")):
        inputs[variant].clear()
        inputs[variant].send_keys(weight)
    time.sleep(1.5)  # a refresh or two: what was typed stays
    assert inputs["Variant2"].get_attribute("value") == "3"

    def click_and_wait(selector, want):
        panel.find_element(By.CSS_SELECTOR, selector).click()
        wait_for(lambda: weights_of(sm, ep) == want, f"weights {want}")
        wait_for(lambda: "Done" in panel.find_element(By.CSS_SELECTOR, ".ab-status").text, "the control's answer")

    click_and_wait("button.set-weights", {"Variant1": 1.0, "Variant2": 3.0})
    wait_for(lambda: "25%" in panel.find_element(By.CSS_SELECTOR, 'tr[data-variant="Variant1"] td.traffic').text, "the new share")
    click_and_wait('button.promote[data-variant="Variant2"]', {"Variant1": 0.0, "Variant2": 1.0})
    wait_for(lambda: panel.find_element(By.CSS_SELECTOR, "button.roll-back").is_enabled(), "roll back enabled")
    click_and_wait("button.roll-back", {"Variant1": 1.0, "Variant2": 3.0})

    events = requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
    messages = [e["message"] for e in events if e["kind"] == "WeightsChanged"]
    for what in ("from the dashboard: set weights", "from the dashboard: promote Variant2", "from the dashboard: roll back"):
        assert any(what in m for m in messages), (what, messages)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-controls.png"))

    # Another origin's page cannot promote (browsers send forms anywhere); nothing changes.
    refused = requests.post(
        f"{berth.url}/berth/v1/endpoints/{ep}/promote", json={"variant": "Variant1"}, headers={"Origin": "http://evil.example"}, timeout=10
    )
    assert refused.status_code == 403, refused.text
    assert weights_of(sm, ep) == {"Variant1": 1.0, "Variant2": 3.0}
    # Hostile bodies: unknown variants, fields, shapes and sizes get a 4xx naming the problem.
    post = lambda action, **kw: requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/{action}", timeout=10, **kw)  # noqa: E731
    assert post("promote", json={"variant": "Nope"}).status_code == 400
    assert post("weights", json={"weights": {"Variant1": -1}}).status_code == 400
    assert post("weights", json={"weights": {"Variant1": "x"}}).status_code == 400
    assert post("weights", json={"weights": {"Variant1": 1}, "extra": 1}).status_code == 400
    assert post("weights", data=b"{" * 100_000).status_code == 413
    assert requests.post(f"{berth.url}/berth/v1/endpoints/nope/rollback", timeout=10).status_code == 404
    assert weights_of(sm, ep) == {"Variant1": 1.0, "Variant2": 3.0}


def test_experiment_controls_need_berths_authentication(own_berth, tmp_path):
    import requests

    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDDASHBOARD\naws_secret_access_key = dashboard-secret\n")
    server = own_berth("--auth", "sigv4", "--credentials-file", str(creds))
    url = f"{server.url}/berth/v1/endpoints/any/rollback"
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, auth=("AKIDDASHBOARD", "wrong"), timeout=10).status_code == 401
    # With the key pair it reaches the control (which finds no such endpoint).
    assert requests.post(url, auth=("AKIDDASHBOARD", "dashboard-secret"), timeout=10).status_code == 404


def test_the_ab_panel_shows_accuracy_with_intervals_and_the_verdict(tmp_path, browser):
    """The demo's own traffic decides its A/B test; the dashboard says so in plain words."""
    from conftest import BerthServer

    server = BerthServer(tmp_path / "data", ["--demo"]).start()
    try:
        browser.get(f"{server.url}/ui")
        verdict = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, '#endpoint-demo .ab .verdict[data-test="decided"]'), "a decided A/B test", timeout=120)[0]
        assert verdict.text.startswith("Variant1 is better: accuracy +") and "95% interval" in verdict.text and "decided after" in verdict.text, verdict.text
        accuracy = browser.find_element(By.CSS_SELECTOR, '#endpoint-demo .ab tr[data-variant="Variant2"] td.accuracy').text
        assert re.fullmatch(r"\d+\.\d% \(\d+\.\d% to \d+\.\d%\)", accuracy), accuracy
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard-ab.png"))
    finally:
        server.stop()


def test_the_model_monitor_panel_shows_schedules_drifted_features_and_drift_over_time(berth, sm, runtime, s3_server, browser):
    """A data-quality schedule on a capturing endpoint whose traffic drifted from the baseline:
    the endpoint's card lists the schedule, its last execution and the drifted feature, and
    charts the feature's drift distance per execution."""
    import random

    from conftest import ROLE, create_echo_model, new_bucket, unique, wait_status

    s3, bucket = new_bucket(s3_server, "monitor-ui")
    rng = random.Random(5)
    rows = [(rng.gauss(50, 5), rng.choice("abc")) for _ in range(300)]
    s3.put_object(Bucket=bucket, Key="train/data.csv", Body=("size,kind\n" + "".join(f"{x!r},{k}\n" for x, k in rows)).encode())
    analyzer = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    baseline = unique("ui-baseline")
    sm.create_processing_job(
        ProcessingJobName=baseline, RoleArn=ROLE, AppSpecification={"ImageUri": analyzer},
        ProcessingInputs=[{"InputName": "baseline_dataset_input", "S3Input": {"S3Uri": f"s3://{bucket}/train", "LocalPath": "/opt/ml/processing/input/baseline", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {"S3Uri": f"s3://{bucket}/baseline", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        Environment={"dataset_format": '{"csv": {"header": true}}', "dataset_source": "/opt/ml/processing/input/baseline", "output_path": "/opt/ml/processing/output"},
    )
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=baseline)["ProcessingJobStatus"] == "Completed", "the baseline job complete")

    name = unique("monitored")
    create_echo_model(sm, name)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{bucket}/capture", "CaptureOptions": [{"CaptureMode": "Input"}]},
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    for x, k in rows[:150]:
        runtime.invoke_endpoint(EndpointName=name, Body=f"{x + 30.0!r},{k}".encode(), ContentType="text/csv")
    time.sleep(2)  # the capture writer's objects land each second
    schedule = f"{name}-schedule"
    sm.create_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"},
        "MonitoringJobDefinition": {
            "BaselineConfig": {"ConstraintsResource": {"S3Uri": f"s3://{bucket}/baseline/constraints.json"}, "StatisticsResource": {"S3Uri": f"s3://{bucket}/baseline/statistics.json"}},
            "MonitoringInputs": [{"EndpointInput": {"EndpointName": name, "LocalPath": "/opt/ml/processing/input/endpoint"}}],
            "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": f"s3://{bucket}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
            "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
            "MonitoringAppSpecification": {"ImageUri": analyzer}, "RoleArn": ROLE,
        }})

    browser.get(f"{berth.url}/ui")
    row = f'#endpoint-{name} .monitor tr[data-schedule="{schedule}"]'
    # The panel reads its data every 5 s: the row may not be there at first.
    wait_for(lambda: any("CompletedWithViolations" in e.text for e in browser.find_elements(By.CSS_SELECTOR, f"{row} td.last")), "the execution's status", timeout=60)
    assert browser.find_element(By.CSS_SELECTOR, f"{row} td.violated").text == "size"
    drawn = browser.execute_script(
        "const m = window.berthDashboard.cards.get(arguments[0]).monitor.plots.get(arguments[1]);"
        "return m && Object.fromEntries(m.chart.series.slice(1).map((s, i) => [s.label, m.data[i + 1]]));", name, schedule)
    # One execution: each feature's drift distance; size's (shifted by six deviations) is large.
    assert drawn["size"][0] > 0.5 and drawn["kind"][0] < 0.2, drawn
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-monitor.png"))
    sm.delete_monitoring_schedule(MonitoringScheduleName=schedule)
    # The view's one parameter only filters: hostile values find nothing and break nothing.
    import requests

    for hostile in ("../../etc/passwd", "%00", "x" * 5000, name.upper() + "'--"):
        answer = requests.get(f"{berth.url}/berth/v1/monitoring", params={"endpoint": hostile}, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"schedules": []}, (hostile, answer.text[:200])


def test_the_recommendations_report_charts_each_candidate_and_exports(berth, sm, tmp_path, browser):
    """An Advanced job's report: a latency-against-throughput curve per candidate, the threshold,
    the recommendation marked, and the chart as SVG and PNG."""
    import io
    import shutil
    import tarfile

    import requests

    from conftest import ROLE, unique

    model = unique("report-model")
    shutil.copy(ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx", tmp_path / "model.onnx")
    sm.create_model(ModelName=model, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{tmp_path / 'model.onnx'}"}, ExecutionRoleArn=ROLE)
    with tarfile.open(tmp_path / "p.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("row.csv")
        info.size = 15
        tar.addfile(info, io.BytesIO(b"5.1,3.5,1.4,0.2"))
    job = unique("report-job")
    sm.create_inference_recommendations_job(
        JobName=job, JobType="Advanced", RoleArn=ROLE,
        InputConfig={"ModelName": model, "ContainerConfig": {"PayloadConfig": {"SamplePayloadUrl": f"file://{tmp_path / 'p.tar.gz'}", "SupportedContentTypes": ["text/csv"]}},
                     "EndpointConfigurations": [{"InstanceType": "ml.c5.large"}, {"InstanceType": "ml.m5.large"}],
                     "TrafficPattern": {"Phases": [{"InitialNumberOfUsers": 4, "SpawnRate": 240, "DurationInSeconds": 10}]}},
        StoppingConditions={"ModelLatencyThresholds": [{"Percentile": "P95", "ValueInMilliseconds": 200}]},
    )
    wait_for(lambda: sm.describe_inference_recommendations_job(JobName=job)["Status"] == "COMPLETED", "the job complete", timeout=120)
    browser.get(f"{berth.url}/ui/recommendations?job={job}")
    groups = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#chart svg g.candidate"), "the candidates' curves")
    assert len(groups) == 2
    assert [g.get_attribute("data-top") for g in groups].count("true") == 1
    assert browser.find_elements(By.CSS_SELECTOR, "#chart svg .recommended-point") and browser.find_elements(By.CSS_SELECTOR, "#chart svg line[data-threshold='200']")
    for g in groups:
        assert len(g.find_elements(By.CSS_SELECTOR, "circle")) >= 2, "a point per load step"
    top = browser.find_element(By.CSS_SELECTOR, "table.candidates tr.top")
    assert "recommended" in top.text and "$" in top.text
    svg_text = browser.execute_script("return window.berthReport.svgText();")
    assert svg_text.startswith("<?xml") and "<svg" in svg_text and "recommended" in svg_text
    png = browser.execute_async_script("const done = arguments[0]; window.berthReport.pngDataUrl().then(done, (e) => done('error: ' + e.message));")
    assert png.startswith("data:image/png;base64,") and len(png) > 1000, png[:80]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "recommendations-report.png"))
    for hostile in ("no-such-job", "..%2F..%2Fetc%2Fpasswd", "x" * 300):
        answer = requests.get(f"{berth.url}/berth/v1/recommendations/{hostile}", timeout=10)
        assert answer.status_code in (400, 404), (hostile, answer.status_code, answer.text[:200])


def test_the_registry_page_lists_groups_and_versions(berth, sm, tmp_path, browser):
    import shutil

    from conftest import unique

    group = unique("page-group")
    sm.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="iris classifiers")
    shutil.copy(ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx", tmp_path / "m.onnx")
    container = {"Image": "berth/onnx", "ModelDataUrl": f"file://{tmp_path / 'm.onnx'}"}
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://bucket/quality/statistics.json"}}}
    for n in range(2):
        arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification={"Containers": [container]}, ModelMetrics=metrics,
                                      CustomerMetadataProperties={"run": str(n)})["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="best")
    browser.get(f"{berth.url}/ui/registry")
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'article[data-group="{group}"] tbody tr'), "the group's versions")
    assert [r.get_attribute("data-version") for r in rows] == ["2", "1"], "newest first"
    assert [r.get_attribute("data-approval") for r in rows] == ["Approved", "PendingManualApproval"]
    assert "best" in rows[0].text and "s3://bucket/quality/statistics.json" in rows[0].text and "run=1" in rows[0].text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "registry.png"))
