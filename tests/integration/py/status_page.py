"""The admin status page in a real browser: Debian's Chromium, headless, driven by its
ChromeDriver through Selenium. Loads the page, searches for a name through the form as a
person would, and fails on any console message of level warning or worse (a blocked asset, a
404 favicon, a script error). Saves a screenshot of the search's answer.

usage: status_page.py URL NAME SCREENSHOT.png
Prints one line per view's answer (`VIEW<TAB>first line`) and `console: N` at the end.
"""
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

url, name, shot = sys.argv[1], sys.argv[2], sys.argv[3]
# Never fetch a driver from the internet: Debian's driver and browser only.
os.environ["SE_OFFLINE"] = "true"
options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("STABLEDNS_CHROMIUM", "/usr/bin/chromium")
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1100,900", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update"):
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
service = Service(executable_path=os.environ.get("STABLEDNS_CHROMEDRIVER", "/usr/bin/chromedriver"))
driver = webdriver.Chrome(service=service, options=options)
problems = []
try:
    driver.set_page_load_timeout(30)
    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(ready.presence_of_element_located((By.ID, "snapshot")))
    if not driver.title.startswith("stabledns"):
        problems.append(f"title: {driver.title!r}")
    box = driver.find_element(By.ID, "name")
    box.clear()
    box.send_keys(name)
    box.submit()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "pre.why")))
    for heading, report in zip(driver.find_elements(By.TAG_NAME, "h3"),
                               driver.find_elements(By.CSS_SELECTOR, "pre.why")):
        view = heading.text.removeprefix("View ").strip()
        print(f"{view}\t{report.text.splitlines()[0] if report.text else ''}")
    driver.save_screenshot(shot)
    for entry in driver.get_log("browser"):
        if entry.get("level") in ("WARNING", "SEVERE"):
            problems.append(f"console {entry['level']}: {entry['message']}")
finally:
    driver.quit()
for p in problems:
    print(p)
print(f"console: {len(problems)}")
sys.exit(1 if problems else 0)
